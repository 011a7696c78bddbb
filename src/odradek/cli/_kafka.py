"""The confluent-kafka names the CLI uses, imported in one place with their real types.

``confluent_kafka.admin`` has no ``__all__``, so under ``mypy --strict`` nothing is
re-exported from it; the classes are imported here from the modules that define them
(which ``confluent_kafka.admin`` itself re-exports at run time). ``OffsetSpec``'s
factories are untyped classmethods, so they get typed wrappers.
"""

from __future__ import annotations

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ElectionType,
    KafkaError,
    KafkaException,
    Message,
    Node,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)
from confluent_kafka.admin._listoffsets import ListOffsetsResultInfo, OffsetSpec
from confluent_kafka.admin._metadata import ClusterMetadata, TopicMetadata
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.admin._topic import TopicDescription
from confluent_kafka.cimpl import NewTopic

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "AdminClient",
    "AlterConfigOpType",
    "ClusterMetadata",
    "ConfigEntry",
    "ConfigResource",
    "Consumer",
    "ElectionType",
    "KafkaError",
    "KafkaException",
    "ListOffsetsResultInfo",
    "Message",
    "NewTopic",
    "Node",
    "OffsetSpec",
    "Producer",
    "ResourceType",
    "TopicCollection",
    "TopicDescription",
    "TopicMetadata",
    "TopicPartition",
    "earliest",
    "latest",
]


def earliest() -> OffsetSpec:
    spec: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    return spec


def latest() -> OffsetSpec:
    spec: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    return spec
