"""Small value types shared by every layer: topic partitions and topic name rules."""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_TOPIC_NAME_LENGTH = 249
new_tuple = tuple.__new__
"""``new_tuple(SomeNamedTuple, (field, ...))`` builds a named tuple without going
through its Python-level ``__new__``, for a third of the cost: for the few made on every
request (each costs thousands of instructions the usual way). Every field must be given,
in order: nothing checks the count."""
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"

    @classmethod
    def from_dir_name(cls, name: str) -> TopicPartition:
        """Parse a log directory name ``<topic>-<partition>``; ValueError if it is not one."""
        topic, sep, partition = name.rpartition("-")
        if not sep or not topic or not partition.isdigit():
            raise ValueError(f"not a partition directory name: {name!r}")
        return cls(topic, int(partition))


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name, or None when it is (Kafka's Topic.validate)."""
    if not name:
        return "Topic name is illegal, it can't be empty"
    if name in (".", ".."):
        return 'Topic name cannot be "." or ".."'
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return (
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, "
            f"topic name: {name}"
        )
    if not _LEGAL_TOPIC_NAME.fullmatch(name):
        return (
            f'Topic name "{name}" is illegal, it contains a character other than '
            "ASCII alphanumerics, '.', '_' and '-'"
        )
    return None


def is_internal_topic(name: str) -> bool:
    return name in ("__consumer_offsets", "__transaction_state")
