"""AlterPartitionReassignments and ListPartitionReassignments (KIP-455) for the CLI.

librdkafka, hence confluent-kafka, does not implement these two APIs, so the CLI sends
them itself: one blocking connection to the controller, one request, one response,
encoded with the same generated codec the broker uses (v0 of both, which every broker
since Kafka 2.4 serves). Only the Kafka protocol is spoken: no broker internals.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kio.schema.alter_partition_reassignments.v0 import request as alter_v0
from kio.schema.list_partition_reassignments.v0 import request as list_v0
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from odradek.protocol import codec

CLIENT_ID = "odradek-cli"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The broker could not be reached or did not answer sensibly."""


@dataclass(frozen=True, slots=True)
class Ongoing:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    adding: tuple[int, ...]
    removing: tuple[int, ...]


def _call(host: str, port: int, request: Any, timeout: float) -> Any:
    api_key, version = int(request.__api_key__), int(request.__version__)
    body = codec.request_bytes(request, 1, CLIENT_ID)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _read(sock, 4))
            if not 4 <= size <= MAX_RESPONSE_BYTES:
                raise ProtocolError(f"broker at {host}:{port} sent a frame of {size} bytes")
            _correlation_id, response = codec.decode_response(api_key, version, _read(sock, size))
    except (OSError, codec.DecodeError) as exc:
        raise ProtocolError(f"request to {host}:{port} failed: {exc}") from None
    return response


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ProtocolError("the broker closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def alter(
    host: str,
    port: int,
    targets: Mapping[tuple[str, int], Sequence[int] | None],
    timeout: float,
) -> dict[tuple[str, int], tuple[int, str | None]]:
    """Send targets (None cancels); each partition's (error code, message)."""
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), replicas in targets.items():
        by_topic.setdefault(topic, []).append(
            alter_v0.ReassignablePartition(
                partition_index=i32(partition),
                replicas=None if replicas is None else tuple(BrokerId(i32(r)) for r in replicas),
            )
        )
    request = alter_v0.AlterPartitionReassignmentsRequest(
        topics=tuple(
            alter_v0.ReassignableTopic(name=TopicName(name), partitions=tuple(partitions))
            for name, partitions in by_topic.items()
        )
    )
    response = _call(host, port, request, timeout)
    if response.error_code != 0:
        return dict.fromkeys(targets, (int(response.error_code), response.error_message))
    return {
        (topic.name, int(p.partition_index)): (int(p.error_code), p.error_message)
        for topic in response.responses
        for p in topic.partitions
    }


def list_ongoing(
    host: str, port: int, topics: Mapping[str, Sequence[int]] | None, timeout: float
) -> tuple[int, str | None, list[Ongoing]]:
    """(error code, message, the partitions under reassignment)."""
    request = list_v0.ListPartitionReassignmentsRequest(
        topics=None
        if topics is None
        else tuple(
            list_v0.ListPartitionReassignmentsTopics(
                name=TopicName(name), partition_indexes=tuple(i32(p) for p in partitions)
            )
            for name, partitions in topics.items()
        )
    )
    response = _call(host, port, request, timeout)
    found = [
        Ongoing(
            topic.name,
            int(p.partition_index),
            tuple(int(r) for r in p.replicas),
            tuple(int(r) for r in p.adding_replicas),
            tuple(int(r) for r in p.removing_replicas),
        )
        for topic in response.topics
        for p in topic.partitions
    ]
    return (
        int(response.error_code),
        response.error_message,
        sorted(found, key=lambda o: (o.topic, o.partition)),
    )
