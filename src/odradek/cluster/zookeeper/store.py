"""``ZooKeeperStore``: cluster metadata in ZooKeeper, cached in memory, watched for changes.

Threads. kazoo runs its own threads; the broker runs on one asyncio loop. Reads are served
from an in-memory cache owned by the loop, so the hot paths never wait for ZooKeeper.
Everything that reads ZooKeeper to refresh the cache runs on one worker thread (the
*reader*), in order; each read is stamped with a sequence number when it starts and its
result is applied on the loop only where it is newer than what the cache holds, so a slow
old read never overwrites a newer one. Writes (topic changes, partition states) are made
from the loop, synchronously: a round trip on loopback takes about a millisecond, and a
write is refused at once with MetadataUnavailableError while the session is not connected
rather than stalling the loop. After a write the store reads the changed topic back
through the reader before returning, so the caller sees its own change.

Fencing. Partition states are written conditionally on their znode version (the partition
epoch); while this broker acts as controller its writes also check the version of
``/controller_epoch`` it saw when it won the election, so a deposed controller's writes
fail instead of undoing the new controller's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)
from kazoo.protocol.states import EventType, WatchedEvent, ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.retry import KazooRetry

from odradek.cluster.brokers import BrokerRegistration
from odradek.cluster.metadata import (
    ENTITY_TYPES,
    PRODUCER_ID_BLOCK,
    MetadataListener,
    MetadataUnavailableError,
    PartitionState,
    StaleStateError,
    TopicExistsError,
    TopicMetadata,
    UnknownTopicError,
    check_entity_type,
    check_partition_update,
    new_topic_id,
)
from odradek.cluster.zookeeper import znodes
from odradek.cluster.zookeeper.znodes import Change

log = logging.getLogger(__name__)

OPS_PER_TRANSACTION = 500
"""ZooKeeper refuses requests over jute.maxbuffer (1 MiB); 500 small znodes stay far below."""
CHANGE_RETENTION_MS = 15 * 60_000
"""Change notifications older than this are deleted by the controller (as Kafka's config
change notifications): a broker away for longer re-reads everything when it returns."""
WRITE_TIMEOUT_SECONDS = 10.0
REGISTRATION_RETRY_SECONDS = 1.0
"""A registration change that failed while connected is written again this much later."""
REPLICA_SET_RETRIES = 5
"""A replica-set change that lost the topic znode to another partition's change is tried
again this many times (the partition epochs still decide whether it may be written)."""


def split_connect(connect: str) -> tuple[str, str]:
    """``host:port[,host:port][/chroot]`` -> (hosts, chroot without a trailing slash)."""
    hosts, slash, chroot = connect.partition("/")
    return hosts, ("/" + chroot).rstrip("/") if slash else ""


Operation = tuple[str, bytes | None]
"""A znode to create with this data, or to delete (None)."""


class ZooKeeperStore:
    def __init__(
        self,
        connect: str,
        cluster_id: str,
        broker_id: int,
        *,
        session_timeout_ms: int = 18_000,
        connection_timeout_ms: int | None = None,
    ) -> None:
        hosts, self._root = split_connect(connect)
        self._connect = connect
        self._broker_id = broker_id
        self._cluster_id = cluster_id
        self._session_timeout = session_timeout_ms / 1000
        self._connection_timeout = (connection_timeout_ms or session_timeout_ms) / 1000
        self._client = KazooClient(
            hosts=hosts,
            timeout=self._session_timeout,
            connection_retry=KazooRetry(max_tries=-1, max_delay=2),
            command_retry=KazooRetry(max_tries=3, max_delay=1),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="zk-reader")
        self._sequence = itertools.count(1)
        self._listeners: list[MetadataListener] = []
        # The loop's cache, with the sequence number of the read each entry came from.
        self._topics: dict[str, TopicMetadata] = {}
        self._by_id: dict[uuid.UUID, TopicMetadata] = {}
        self._topic_read: dict[str, int] = {}
        self._brokers: dict[int, BrokerRegistration] = {}
        self._brokers_read = 0
        self._entities: dict[str, dict[str, dict[str, str]]] = {t: {} for t in ENTITY_TYPES}
        self._entity_read: dict[tuple[str, str], int] = {}
        self._controller_id = -1
        self._controller_epoch = 0
        # The reader's own state (touched by the reader thread only).
        self._reader_topics: dict[str, TopicMetadata] = {}
        self._last_change = -1
        self._epoch_zk_version = -1
        """Version of /controller_epoch when this broker won the election; -1: not it."""
        self._registration: BrokerRegistration | None = None
        self._registration_unwritten = False
        """A change of this broker's registration failed to reach ZooKeeper (connection
        lost): written again when the connection is back."""
        self._session_lost = False
        self._closed = False
        self._next_producer_id = 0
        self._producer_id_limit = 0

    # -- paths -----------------------------------------------------------------------------

    def _path(self, path: str) -> str:
        return self._root + path

    # -- connecting ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach ZooKeeper (retrying, with a warning now and then, until it answers), agree
        on the cluster id, load the metadata and start watching it."""
        self._loop = asyncio.get_running_loop()
        event = self._client.start_async()
        waited = 0.0
        while not await asyncio.to_thread(event.wait, self._connection_timeout):
            waited += self._connection_timeout
            log.warning(
                "cannot reach ZooKeeper at %s after %.0fs; still trying "
                "(check zookeeper.connect and that ZooKeeper is running)",
                self._connect,
                waited,
            )
        if not self._client.connected:
            raise RuntimeError(f"could not connect to ZooKeeper at {self._connect}")
        self._client.add_listener(self._session_state_changed)
        await self._on_reader(self._prepare)
        await self._on_reader(self._load_everything)
        self._watch()

    def _prepare(self) -> None:
        client = self._client
        if self._root:
            client.ensure_path(self._root)
        for path in znodes.PERSISTENT_PATHS:
            client.ensure_path(self._path(path))
        try:
            client.create(self._path(znodes.CLUSTER_ID), znodes.encode_cluster_id(self._cluster_id))
        except NodeExistsError:
            data, _ = client.get(self._path(znodes.CLUSTER_ID))
            self._cluster_id = znodes.decode_cluster_id(data)

    def _watch(self) -> None:
        client = self._client
        ChildrenWatch(client, self._path(znodes.BROKER_IDS), self._brokers_watch)
        ChildrenWatch(client, self._path(znodes.TOPICS), self._topics_watch)
        ChildrenWatch(client, self._path(znodes.CHANGES), self._changes_watch)
        DataWatch(client, self._path(znodes.CONTROLLER), self._controller_watch)

    def close(self) -> None:
        """Leave the cluster: the session ends, so this broker's ephemeral znodes go."""
        if self._closed:
            return
        self._closed = True
        self._reader.shutdown(wait=False, cancel_futures=True)
        try:
            self._client.stop()
            self._client.close()
        except KazooException:
            log.warning("ZooKeeper session did not close cleanly", exc_info=True)

    # -- the reader ------------------------------------------------------------------------

    async def _on_reader(self, job: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self._reader.submit(job))

    def _submit(self, job: Callable[[], Any]) -> None:
        """Queue a refresh from a kazoo thread; its results reach the loop on their own."""
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                self._reader.submit(self._guarded, job)

    def _guarded(self, job: Callable[[], Any]) -> None:
        try:
            job()
        except KazooException as exc:
            log.warning("reading cluster metadata from ZooKeeper failed: %r", exc)
        except Exception:
            log.exception("reading cluster metadata from ZooKeeper failed")

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the event loop."""
        if self._loop is not None and not self._closed and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _load_everything(self) -> None:
        changes = self._client.get_children(self._path(znodes.CHANGES))
        self._last_change = max((znodes.change_sequence(c) for c in changes), default=-1)
        self._read_brokers()
        names = self._client.get_children(self._path(znodes.TOPICS))
        self._read_topics(names)
        seq = next(self._sequence)
        entities: dict[tuple[str, str], dict[str, str] | None] = {}
        for entity_type in ENTITY_TYPES:
            for child in self._client.get_children(
                self._path(f"{znodes.ENTITY_CONFIGS}/{entity_type}")
            ):
                name = znodes.entity_name(child)
                entities[(entity_type, name)] = self._read_entity(entity_type, name)
        self._post(self._apply_entities, seq, entities)

    # watches (kazoo threads)

    def _brokers_watch(self, _children: list[str]) -> None:
        self._submit(self._read_brokers)

    def _broker_data_watch(self, event: WatchedEvent) -> None:
        """A broker's registration changed (its offline replicas): the children watch
        does not see that. Session events (type NONE) are left to ``_rejoin``."""
        if event.type != EventType.NONE:
            self._submit(self._read_brokers)

    def _topics_watch(self, children: list[str]) -> None:
        self._submit(lambda: self._read_topic_list(children))

    def _changes_watch(self, children: list[str]) -> None:
        self._submit(lambda: self._read_changes(children))

    def _controller_watch(self, data: bytes | None, _stat: ZnodeStat | None) -> None:
        self._submit(self._elect if data is None else lambda: self._learn_controller(data))

    def _session_state_changed(self, state: str) -> None:
        if state == KazooState.LOST:
            self._session_lost = True
            self._epoch_zk_version = -1
            self._post(self._apply_session_lost)
        elif state == KazooState.CONNECTED and self._session_lost:
            self._session_lost = False
            self._submit(self._rejoin)
        elif state == KazooState.CONNECTED and self._registration_unwritten:
            self._submit(self._write_registration)

    # reads (reader thread)

    def _read_brokers(self) -> None:
        seq = next(self._sequence)
        client = self._client
        found: dict[int, BrokerRegistration] = {}
        for child in client.get_children(self._path(znodes.BROKER_IDS)):
            if not child.isdigit():
                continue
            try:
                data, _ = client.get(
                    self._path(znodes.broker_path(int(child))), watch=self._broker_data_watch
                )
            except NoNodeError:
                continue
            found[int(child)] = znodes.decode_broker(int(child), data)
        self._post(self._apply_brokers, seq, found)

    def _read_topic_list(self, children: Sequence[str]) -> None:
        known = set(self._reader_topics)
        present = set(children)
        self._read_topics(present - known, gone=known - present)

    def _read_topics(self, names: Iterable[str], gone: Iterable[str] = ()) -> None:
        seq = next(self._sequence)
        updates: dict[str, TopicMetadata | None] = dict.fromkeys(gone)
        for name in names:
            updates[name] = self._read_topic(name)
        self._publish(seq, updates)

    def _read_topic(self, name: str) -> TopicMetadata | None:
        """A whole topic; None if it is absent or half-written (being created or deleted)."""
        client = self._client
        try:
            data, _ = client.get(self._path(znodes.topic_path(name)))
        except NoNodeError:
            return None
        assignment = znodes.decode_assignment(data)
        pending = [
            client.get_async(self._path(znodes.state_path(name, index)))
            for index in range(len(assignment.replicas))
        ]
        config_read = client.get_async(self._path(znodes.topic_config_path(name)))
        states = []
        for index, result in enumerate(pending):
            try:
                raw, stat = result.get()
            except NoNodeError:
                return None
            replicas, adding, removing = assignment.of(index)
            states.append(znodes.decode_state(raw, replicas, stat.version, adding, removing))
        try:
            raw_config, _ = config_read.get()
            configs = znodes.decode_topic_config(raw_config)
        except NoNodeError:
            configs = {}
        return TopicMetadata(
            name=name,
            topic_id=assignment.topic_id,
            partitions=tuple(states),
            configs=configs,
        )

    def _read_changes(self, children: Sequence[str]) -> None:
        fresh = sorted(
            (seq, child)
            for child in children
            if (seq := znodes.change_sequence(child)) > self._last_change
        )
        if not fresh:
            return
        changed: dict[str, set[int] | None] = {}
        entities: set[tuple[str, str]] = set()
        for change_seq, child in fresh:
            self._last_change = max(self._last_change, change_seq)
            try:
                data, _ = self._client.get(self._path(f"{znodes.CHANGES}/{child}"))
            except NoNodeError:
                continue
            for change in znodes.decode_changes(data):
                if change.entity_type is not None:
                    entities.add((change.entity_type, change.topic))
                    continue
                merged = changed.get(change.topic, set())
                if change.partitions is None or merged is None:
                    changed[change.topic] = None
                else:
                    changed[change.topic] = merged | set(change.partitions)
        seq = next(self._sequence)
        updates: dict[str, TopicMetadata | None] = {}
        for name, indices in changed.items():
            current = self._reader_topics.get(name)
            if indices is None or current is None:
                updates[name] = self._read_topic(name)
            else:
                updates[name] = self._read_states(current, sorted(indices))
        self._publish(seq, updates)
        if entities:
            read = {key: self._read_entity(*key) for key in entities}
            self._post(self._apply_entities, seq, read)
        if self._epoch_zk_version >= 0:
            self._expire_changes(children)

    def _read_entity(self, entity_type: str, name: str) -> dict[str, str] | None:
        try:
            data, _ = self._client.get(self._path(znodes.entity_config_path(entity_type, name)))
        except NoNodeError:
            return None
        return znodes.decode_topic_config(data) or None

    def _read_states(self, topic: TopicMetadata, indices: Sequence[int]) -> TopicMetadata | None:
        partitions = list(topic.partitions)
        pending = {
            index: self._client.get_async(self._path(znodes.state_path(topic.name, index)))
            for index in indices
            if index < len(partitions)
        }
        for index, result in pending.items():
            try:
                raw, stat = result.get()
            except NoNodeError:
                return self._read_topic(topic.name)
            old = partitions[index]
            partitions[index] = znodes.decode_state(
                raw, old.replicas, stat.version, old.adding_replicas, old.removing_replicas
            )
        return replace(topic, partitions=tuple(partitions))

    def _expire_changes(self, children: Sequence[str]) -> None:
        oldest = time.time() * 1000 - CHANGE_RETENTION_MS
        for child in children:
            path = self._path(f"{znodes.CHANGES}/{child}")
            try:
                stat = self._client.exists(path)
                if stat is not None and stat.ctime < oldest:
                    self._client.delete(path)
            except NoNodeError:
                pass

    def _publish(self, seq: int, updates: Mapping[str, TopicMetadata | None]) -> None:
        for name, topic in updates.items():
            if topic is None:
                self._reader_topics.pop(name, None)
            else:
                self._reader_topics[name] = topic
        self._post(self._apply_topics, seq, dict(updates))

    def _refresh_now(self, names: Iterable[str], partitions: Sequence[int] | None = None) -> None:
        """Read topics back after this broker changed them, and apply before returning;
        with ``partitions`` (one topic whose replica sets did not change), only those
        partitions' states are read again, not every state of the topic."""
        wanted = list(names)

        def read(name: str) -> TopicMetadata | None:
            known = self._reader_topics.get(name)
            if partitions is None or known is None:
                return self._read_topic(name)
            return self._read_states(known, partitions)

        def job() -> tuple[int, dict[str, TopicMetadata | None]]:
            seq = next(self._sequence)
            updates = {name: read(name) for name in wanted}
            for name, topic in updates.items():
                if topic is None:
                    self._reader_topics.pop(name, None)
                else:
                    self._reader_topics[name] = topic
            return seq, updates

        seq, updates = self._reader.submit(job).result(WRITE_TIMEOUT_SECONDS)
        self._apply_topics(seq, updates)

    # controller election (reader thread)

    def _elect(self) -> None:
        if self._registration is None or self._session_lost:
            return
        client = self._client
        try:
            client.create(
                self._path(znodes.CONTROLLER),
                znodes.encode_controller(self._broker_id),
                ephemeral=True,
            )
        except NodeExistsError:
            data, _ = client.get(self._path(znodes.CONTROLLER))
            self._learn_controller(data)
            return
        epoch_path = self._path(znodes.CONTROLLER_EPOCH)
        while True:
            try:
                raw, stat = client.get(epoch_path)
            except NoNodeError:
                try:
                    client.create(epoch_path, b"1")
                except NodeExistsError:
                    continue
                epoch, version = 1, 0
                break
            epoch = int(raw) + 1
            try:
                version = client.set(epoch_path, str(epoch).encode(), stat.version).version
            except BadVersionError:
                continue
            break
        self._epoch_zk_version = version
        log.info("broker %d is the controller (epoch %d)", self._broker_id, epoch)
        self._post(self._apply_controller, self._broker_id, epoch)

    def _learn_controller(self, data: bytes) -> None:
        controller = znodes.decode_controller(data)
        if controller != self._broker_id:
            self._epoch_zk_version = -1
        try:
            raw, _ = self._client.get(self._path(znodes.CONTROLLER_EPOCH))
        except NoNodeError:
            raw = b"0"
        self._post(self._apply_controller, controller, int(raw))

    def _rejoin(self) -> None:
        """A new session after the old one expired: register again, re-read everything."""
        log.warning(
            "ZooKeeper session re-established; registering broker %d again", self._broker_id
        )
        self._registration_unwritten = False  # the latest is written now
        if self._registration is not None:
            try:
                self._client.create(
                    self._path(znodes.broker_path(self._broker_id)),
                    znodes.encode_broker(self._registration),
                    ephemeral=True,
                )
            except NodeExistsError:
                log.error("broker id %d was taken by another broker meanwhile", self._broker_id)
        self._load_everything()
        self._elect()

    # -- applying reads (loop) -------------------------------------------------------------

    def _apply_brokers(self, seq: int, found: dict[int, BrokerRegistration]) -> None:
        if seq <= self._brokers_read:
            return
        self._brokers_read = seq
        if found == self._brokers:
            return
        self._brokers = found
        for listener in self._listeners:
            listener.brokers_changed(found)

    def _apply_topics(self, seq: int, updates: Mapping[str, TopicMetadata | None]) -> None:
        for name, topic in updates.items():
            if seq <= self._topic_read.get(name, 0):
                continue
            self._topic_read[name] = seq
            old = self._topics.get(name)
            if topic is None:
                if old is not None:
                    del self._topics[name]
                    self._by_id.pop(old.topic_id, None)
                    for listener in self._listeners:
                        listener.topic_deleted(old)
                continue
            self._topics[name] = topic
            self._by_id[topic.topic_id] = topic
            if old is not None and old.topic_id != topic.topic_id:
                self._by_id.pop(old.topic_id, None)
                for listener in self._listeners:
                    listener.topic_deleted(old)
                old = None
            self._announce(old, topic)

    def _announce(self, old: TopicMetadata | None, new: TopicMetadata) -> None:
        listeners = self._listeners
        if old is None:
            for listener in listeners:
                listener.topic_created(new)
            return
        common = min(len(old.partitions), len(new.partitions))
        changed = [i for i in range(common) if old.partitions[i] != new.partitions[i]]
        if changed:
            for listener in listeners:
                listener.partition_states_changed(new, changed)
        if len(new.partitions) > len(old.partitions):
            for listener in listeners:
                listener.partitions_added(new, len(old.partitions))
        if new.configs != old.configs:
            for listener in listeners:
                listener.topic_configs_changed(new)

    def _apply_entities(
        self, seq: int, updates: Mapping[tuple[str, str], dict[str, str] | None]
    ) -> None:
        for (entity_type, name), configs in updates.items():
            if entity_type not in self._entities:
                continue
            if seq <= self._entity_read.get((entity_type, name), 0):
                continue
            self._entity_read[(entity_type, name)] = seq
            entities = self._entities[entity_type]
            if entities.get(name) == configs:
                continue
            if configs is None:
                entities.pop(name, None)
            else:
                entities[name] = configs
            for listener in self._listeners:
                listener.entity_configs_changed(entity_type, name)

    def _apply_controller(self, controller_id: int, epoch: int) -> None:
        if epoch < self._controller_epoch or (
            epoch == self._controller_epoch and controller_id == self._controller_id
        ):
            return
        self._controller_id = controller_id
        self._controller_epoch = epoch
        for listener in self._listeners:
            listener.controller_changed(controller_id, controller_id == self._broker_id)

    def _apply_session_lost(self) -> None:
        log.error(
            "ZooKeeper session expired: broker %d stops leading partitions until it is "
            "registered again",
            self._broker_id,
        )
        self._controller_id = -1
        self._brokers = {}  # so that registering again is announced as a change
        for listener in self._listeners:
            listener.session_lost()

    # -- MetadataStore: reads ---------------------------------------------------------------

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def controller_id(self) -> int:
        return self._controller_id

    @property
    def controller_epoch(self) -> int:
        return self._controller_epoch

    @property
    def is_controller(self) -> bool:
        return self._controller_id == self._broker_id and self._epoch_zk_version >= 0

    def add_listener(self, listener: MetadataListener) -> None:
        self._listeners.append(listener)

    def brokers(self) -> Mapping[int, BrokerRegistration]:
        return self._brokers

    def topics(self) -> Mapping[str, TopicMetadata]:
        return self._topics

    def topic(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self._by_id.get(topic_id)

    # -- MetadataStore: registration -------------------------------------------------------

    async def wait_until_registered(self, registration: BrokerRegistration) -> None:
        """Register this broker (``/brokers/ids/<id>``, ephemeral) and join the controller
        election. A registration left by this broker's previous process (killed without
        closing its session) is waited out: ZooKeeper drops it when that session expires.
        """
        path = self._path(znodes.broker_path(registration.broker_id))
        warned = False
        while True:
            try:
                await asyncio.to_thread(
                    self._client.create, path, znodes.encode_broker(registration), ephemeral=True
                )
                break
            except NodeExistsError:
                stat = await asyncio.to_thread(self._client.exists, path)
                if stat is not None and stat.ephemeralOwner == self._client.client_id[0]:
                    # Ours already (a create retried after a lost answer): make sure it
                    # holds this registration.
                    await asyncio.to_thread(
                        self._client.set, path, znodes.encode_broker(registration)
                    )
                    break
                if not warned:
                    log.warning(
                        "broker id %d is registered in ZooKeeper by another session (a "
                        "previous run of this broker, or another broker with this id); "
                        "waiting for it to go (at most zookeeper.session.timeout.ms)",
                        registration.broker_id,
                    )
                    warned = True
                await asyncio.sleep(0.5)
        self._registration = registration
        await self._on_reader(self._read_brokers)
        await self._on_reader(self._elect)

    def deregister_broker(self) -> None:
        """Leave the live brokers (controlled shutdown): the controller moves this
        broker's leaderships away as if it had died, while it still serves."""
        client = self._require_connected()
        try:
            client.delete(self._path(znodes.broker_path(self._broker_id)))
        except NoNodeError:
            pass
        except KazooException as exc:
            raise MetadataUnavailableError(f"cannot deregister: {exc!r}") from exc
        self._registration = None
        self._submit(self._read_brokers)

    def register_broker(self, registration: BrokerRegistration) -> None:
        """Done by ``wait_until_registered`` (ZooKeeper registration must be awaited)."""
        if self._registration != registration:
            raise RuntimeError("await wait_until_registered() before serving")

    def update_registration(self, registration: BrokerRegistration) -> None:
        """Rewrite this broker's ``/brokers/ids/<id>`` (its offline replicas changed).

        Written by the reader thread, so the loop never waits and writes are made in
        order, each with the latest registration. A write that fails for a lost
        connection is made again when the connection is back; after a lost session the
        broker registers again with the latest registration (``_rejoin``); one that
        fails otherwise is tried again a second later. Every broker learns of the change
        through its data watch on the znode."""
        if self._registration is None:
            return
        self._registration = registration
        self._submit(self._write_registration)

    def _write_registration(self) -> None:
        self._registration_unwritten = False
        registration = self._registration
        if registration is None or self._session_lost or self._closed:
            return
        client = self._client
        path = self._path(znodes.broker_path(self._broker_id))
        try:
            stat = client.exists(path)
            if stat is None or stat.ephemeralOwner != client.client_id[0]:
                return  # not registered in this session: _rejoin registers with the latest
            client.set(path, znodes.encode_broker(registration))
        except NoNodeError:
            return  # deregistered meanwhile, or the session expired
        except KazooException:
            self._registration_unwritten = True  # for the next reconnection
            if client.connected:  # failed without losing the connection: try again soon
                self._post(self._retry_registration)
            raise

    def _retry_registration(self) -> None:
        assert self._loop is not None
        self._loop.call_later(REGISTRATION_RETRY_SECONDS, self._submit, self._write_registration)

    # -- MetadataStore: changes ------------------------------------------------------------

    def _require_connected(self) -> KazooClient:
        if self._closed or not self._client.connected or self._session_lost:
            raise MetadataUnavailableError(
                f"ZooKeeper at {self._connect} is not reachable; metadata cannot change now"
            )
        return self._client

    def _commit(self, build: Callable[[Any], None]) -> list[Any]:
        """One ZooKeeper transaction; the first failing operation's exception is raised."""
        client = self._require_connected()
        transaction = client.transaction()
        build(transaction)
        try:
            results = transaction.commit_async().get(WRITE_TIMEOUT_SECONDS)
        except KazooException as exc:
            raise MetadataUnavailableError(f"ZooKeeper write failed: {exc!r}") from exc
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, RolledBackError):
                raise result
        return list(results)

    def _commit_in_chunks(self, operations: list[Operation]) -> None:
        """Creates and deletes (path, data or None for a delete) in transactions of at
        most OPS_PER_TRANSACTION each."""
        for start in range(0, len(operations), OPS_PER_TRANSACTION):
            chunk = operations[start : start + OPS_PER_TRANSACTION]

            def build(transaction: Any, chunk: list[Operation] = chunk) -> None:
                for path, data in chunk:
                    if data is None:
                        transaction.delete(self._path(path))
                    else:
                        transaction.create(self._path(path), data)

            self._commit(build)

    def _notify(self, transaction: Any, changes: Iterable[Change]) -> None:
        transaction.create(
            self._path(f"{znodes.CHANGES}/{znodes.CHANGE_PREFIX}"),
            znodes.encode_changes(changes),
            sequence=True,
        )

    def _fence(self, transaction: Any) -> None:
        if self._epoch_zk_version >= 0:
            transaction.check(self._path(znodes.CONTROLLER_EPOCH), self._epoch_zk_version)

    def create_topic(
        self, name: str, assignment: list[list[int]], configs: Mapping[str, str]
    ) -> TopicMetadata:
        topic_id = new_topic_id()
        path = self._path

        partitions = self._new_partitions(name, 0, assignment)
        config_data = znodes.encode_topic_config(configs)
        # A topic small enough goes in one transaction, so a broker dying half-way never
        # leaves it half-written; a wider one is written in chunks (readers ignore a
        # topic until every partition state exists).
        whole = len(partitions) + 4 <= OPS_PER_TRANSACTION

        def header(transaction: Any) -> None:
            transaction.create(
                path(znodes.topic_path(name)), znodes.encode_assignment(topic_id, assignment)
            )
            transaction.create(path(znodes.partitions_path(name)))
            if whole:
                for znode, data in partitions:
                    transaction.create(path(znode), data)
                finish(transaction)

        def finish(transaction: Any) -> None:
            self._set_config(transaction, name, config_data)
            self._notify(transaction, [Change(name, None)])

        try:
            self._commit(header)
        except NodeExistsError:
            raise TopicExistsError(f"Topic '{name}' already exists.") from None
        if not whole:
            self._commit_in_chunks(partitions)
            self._commit(finish)
        self._refresh_now([name])
        created = self._topics.get(name)
        if created is None:
            raise MetadataUnavailableError(f"topic {name} vanished right after its creation")
        return created

    def _new_partitions(
        self, name: str, first: int, assignment: Sequence[Sequence[int]]
    ) -> list[Operation]:
        operations: list[Operation] = []
        for index, replicas in enumerate(assignment, start=first):
            state = PartitionState(
                leader=replicas[0], replicas=tuple(replicas), isr=tuple(replicas)
            )
            operations.append((znodes.partition_path(name, index), b""))
            operations.append(
                (znodes.state_path(name, index), znodes.encode_state(state, self._controller_epoch))
            )
        return operations

    def _set_config(self, transaction: Any, name: str, data: bytes) -> None:
        config_path = self._path(znodes.topic_config_path(name))
        if self._client.exists(config_path) is None:
            transaction.create(config_path, data)
        else:
            transaction.set_data(config_path, data)

    def delete_topic(self, name: str) -> TopicMetadata:
        topic = self._topics.get(name)
        if topic is None:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        path = self._path
        client = self._require_connected()
        operations: list[Operation] = []
        if client.exists(path(znodes.topic_config_path(name))) is not None:
            operations.append((znodes.topic_config_path(name), None))
        for index in range(len(topic.partitions)):
            operations.append((znodes.state_path(name, index), None))
            operations.append((znodes.partition_path(name, index), None))
        operations.append((znodes.partitions_path(name), None))
        operations.append((znodes.topic_path(name), None))
        try:
            self._commit_in_chunks(operations)
        except NoNodeError:
            raise UnknownTopicError(f"Topic '{name}' does not exist.") from None
        self._refresh_now([name])
        return topic

    def add_partitions(self, name: str, assignment: list[list[int]]) -> TopicMetadata:
        topic = self._topics.get(name)
        if topic is None:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        path = self._path
        client = self._require_connected()
        data, stat = client.get(path(znodes.topic_path(name)))
        current = znodes.decode_assignment(data)
        self._commit_in_chunks(self._new_partitions(name, len(current.replicas), assignment))
        whole = [list(r) for r in current.replicas] + [list(r) for r in assignment]

        def publish(transaction: Any) -> None:
            transaction.set_data(
                path(znodes.topic_path(name)),
                znodes.encode_assignment(current.topic_id, whole, current.adding, current.removing),
                stat.version,
            )
            self._notify(transaction, [Change(name, None)])

        try:
            self._commit(publish)
        except BadVersionError:
            raise StaleStateError(f"topic {name} changed while adding partitions") from None
        self._refresh_now([name])
        return self._topics[name]

    def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata:
        if name not in self._topics:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        data = znodes.encode_topic_config(configs)

        def build(transaction: Any) -> None:
            self._set_config(transaction, name, data)
            self._notify(transaction, [Change(name, None)])

        self._commit(build)
        self._refresh_now([name])
        return self._topics[name]

    def entity_configs(self, entity_type: str) -> Mapping[str, Mapping[str, str]]:
        check_entity_type(entity_type)
        return self._entities[entity_type]

    def set_entity_configs(self, entity_type: str, name: str, configs: Mapping[str, str]) -> None:
        check_entity_type(entity_type)
        path = self._path(znodes.entity_config_path(entity_type, name))
        exists = self._require_connected().exists(path) is not None

        def build(transaction: Any) -> None:
            if configs:
                data = znodes.encode_topic_config(configs)
                if exists:
                    transaction.set_data(path, data)
                else:
                    transaction.create(path, data)
            elif exists:
                transaction.delete(path)
            self._notify(transaction, [Change(name, None, entity_type)])

        self._commit(build)

        def job() -> tuple[int, dict[tuple[str, str], dict[str, str] | None]]:
            return next(self._sequence), {(entity_type, name): self._read_entity(entity_type, name)}

        seq, updates = self._reader.submit(job).result(WRITE_TIMEOUT_SECONDS)
        self._apply_entities(seq, updates)

    def alter_partition_states(
        self, name: str, states: Mapping[int, PartitionState]
    ) -> TopicMetadata:
        """Partition states are written to their state znodes, each conditional on its
        version. A change of replica set (a reassignment) also rewrites the topic znode,
        in the same transaction, conditional on the version just read; losing that race
        to a change of another partition of the topic is retried, since only the
        partition epochs say whether this change is still valid."""
        for _attempt in range(REPLICA_SET_RETRIES):
            topic = self._topics.get(name)
            if topic is None:
                raise UnknownTopicError(f"Topic '{name}' does not exist.")
            for index, state in states.items():
                check_partition_update(topic, index, state)
            try:
                self._write_states(topic, states)
            except BadVersionError:
                self._refresh_now([name])
                if not any(
                    _replica_set(s) != _replica_set(topic.partitions[i]) for i, s in states.items()
                ):
                    break
                continue
            same_replicas = all(
                _replica_set(s) == _replica_set(topic.partitions[i]) for i, s in states.items()
            )
            self._refresh_now([name], sorted(states) if same_replicas else None)
            return self._topics[name]
        raise StaleStateError(
            f"partition states of {name} changed meanwhile (or this broker is no longer "
            "the controller)"
        )

    def _write_states(self, topic: TopicMetadata, states: Mapping[int, PartitionState]) -> None:
        name = topic.name
        epoch = self._controller_epoch
        assignment: tuple[bytes, int] | None = None
        if any(_replica_set(s) != _replica_set(topic.partitions[i]) for i, s in states.items()):
            try:
                data, stat = self._require_connected().get(self._path(znodes.topic_path(name)))
            except NoNodeError:
                raise UnknownTopicError(f"Topic '{name}' does not exist.") from None
            except KazooException as exc:
                raise MetadataUnavailableError(f"ZooKeeper read failed: {exc!r}") from exc
            current = znodes.decode_assignment(data)
            replicas = list(current.replicas)
            adding, removing = dict(current.adding), dict(current.removing)
            for index, state in states.items():
                replicas[index] = state.replicas
                adding[index] = state.adding_replicas
                removing[index] = state.removing_replicas
            updated = znodes.Assignment(current.topic_id, tuple(replicas), adding, removing)
            assignment = (updated.encode(), stat.version)

        def build(transaction: Any) -> None:
            self._fence(transaction)
            if assignment is not None:
                transaction.set_data(self._path(znodes.topic_path(name)), *assignment)
            for index, state in states.items():
                transaction.set_data(
                    self._path(znodes.state_path(name, index)),
                    znodes.encode_state(state, epoch),
                    state.partition_epoch,
                )
            # A new replica set is in the topic znode: every broker re-reads the topic.
            changed = None if assignment is not None else tuple(sorted(states))
            self._notify(transaction, [Change(name, changed)])

        self._commit(build)

    def allocate_producer_id(self) -> int:
        """Next producer id, from blocks reserved in ``/latest_producer_id_block`` by
        conditional update, so no two brokers ever hand out the same id."""
        if self._next_producer_id >= self._producer_id_limit:
            client = self._require_connected()
            path = self._path(znodes.PRODUCER_ID_BLOCK)
            while True:
                try:
                    data, stat = client.get(path)
                except NoNodeError:
                    start = 0
                    try:
                        client.create(
                            path,
                            znodes.encode_producer_id_block(
                                self._broker_id, 0, PRODUCER_ID_BLOCK - 1
                            ),
                        )
                    except NodeExistsError:
                        continue
                    break
                start = znodes.decode_producer_id_block_end(data) + 1
                try:
                    client.set(
                        path,
                        znodes.encode_producer_id_block(
                            self._broker_id, start, start + PRODUCER_ID_BLOCK - 1
                        ),
                        stat.version,
                    )
                except BadVersionError:
                    continue
                break
            self._next_producer_id = start
            self._producer_id_limit = start + PRODUCER_ID_BLOCK
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        return producer_id


def _replica_set(state: PartitionState) -> tuple[tuple[int, ...], ...]:
    """What of a partition state lives in the topic znode rather than the state znode."""
    return state.replicas, state.adding_replicas, state.removing_replicas
