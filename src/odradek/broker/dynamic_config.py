"""Dynamic broker configs (Kafka's ``DynamicBrokerConfig``, ZooKeeper mode).

Stored as entity configs of the metadata store, where Kafka kept them:
``/config/brokers/<id>`` for one broker and ``/config/brokers/<default>`` for every
broker. This listener loads both into the shared ``BrokerConfig`` at start and again
whenever either changes (an AlterConfigs on any broker of the cluster reaches every
broker through the store), so every ``BrokerConfig.get`` sees the new value. Topic
defaults are pushed into the running logs, as Kafka's ``DynamicLogConfig`` does: every
log of a topic is rebuilt from its overrides over the new defaults, so a log with its
own override is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from odradek.cluster.metadata import DEFAULT_ENTITY, MetadataListener, MetadataStore
from odradek.config import TOPIC_KEYS, BrokerConfig
from odradek.replication.replica_manager import ReplicaManager

log = logging.getLogger(__name__)

ENTITY_TYPE = "brokers"
TOPIC_DEFAULTS = frozenset(name for key in TOPIC_KEYS.values() for name in key.synonyms)
"""Broker configs that are defaults of topic configs: a change rebuilds LogConfigs."""


class DynamicBrokerConfigs(MetadataListener):
    def __init__(
        self,
        config: BrokerConfig,
        metadata: MetadataStore,
        replica_manager: ReplicaManager,
        on_changed: Callable[[set[str]], None] = lambda _names: None,
    ) -> None:
        self.config = config
        self.metadata = metadata
        self.replica_manager = replica_manager
        self.on_changed = on_changed
        """Called with the names whose value changed, once logs have their new config
        (the broker restarts its log cleaner for the cleaner's configs, else wakes it:
        a cleanup.policy now compact is compacted at once, not after the backoff)."""

    def reload(self) -> set[str]:
        """Read both entities again; returns the configs whose value changed."""
        stored = self.metadata.entity_configs(ENTITY_TYPE)
        changed = self.config.set_dynamic(
            stored.get(str(self.config.broker_id), {}), stored.get(DEFAULT_ENTITY, {})
        )
        if changed:
            log.info("dynamic broker configs changed: %s", ", ".join(sorted(changed)))
        return changed

    def entity_configs_changed(self, entity_type: str, name: str) -> None:
        if entity_type != ENTITY_TYPE or name not in (DEFAULT_ENTITY, str(self.config.broker_id)):
            return
        changed = self.reload()
        if changed & TOPIC_DEFAULTS:
            for topic in self.metadata.topics().values():
                self.replica_manager.topic_configs_changed(topic)
        if changed:
            self.on_changed(changed)
