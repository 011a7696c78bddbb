"""A minimal raw Kafka client for tests that need exact frames (bad input, edge cases).

Requests and responses go through kio, as the broker's own codec does, but framing is
explicit so a test can send anything: truncated bodies, wrong sizes, unknown versions.
"""

from __future__ import annotations

import datetime
import io
import socket
import struct
from typing import Any

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.request_header.v1.header import RequestHeader as HeaderV1
from kio.schema.request_header.v2.header import RequestHeader as HeaderV2
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from odradek.protocol import codec


class WireClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    @classmethod
    def wrap(cls, sock: socket.socket) -> WireClient:
        """A client over a socket the caller connected (e.g. from a chosen source address)."""
        client = cls.__new__(cls)
        client.sock = sock
        client.correlation_id = 0
        return client

    def header(self, api_key: int, version: int, flexible: bool, client_id: str = "wire") -> bytes:
        self.correlation_id += 1
        return encode_header(api_key, version, self.correlation_id, flexible, client_id)

    def request_bytes(self, request: Any) -> bytes:
        api_key, version = int(request.__api_key__), int(request.__version__)
        head = self.header(api_key, version, codec.is_flexible_request(api_key, version))
        return head + codec.encode(request)

    def call(self, request: Any) -> Any:
        """Send a kio request entity and decode its response."""
        api_key, version = int(request.__api_key__), int(request.__version__)
        self.send_frame(self.request_bytes(request))
        body = self.read_frame()
        (correlation_id,) = struct.unpack_from(">i", body, 0)
        assert correlation_id == self.correlation_id
        offset = 5 if codec.is_flexible_response(api_key, version) else 4
        response, _ = entity_reader(codec.response_class(api_key, version))(body, offset)
        return response

    def read_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._read_exact(4))
        return self._read_exact(size)

    def _read_exact(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.sock.recv(size)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def is_closed_by_peer(self, timeout: float = 2.0) -> bool:
        """Whether the broker closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def encode_header(
    api_key: int, version: int, correlation_id: int, flexible: bool, client_id: str = "wire"
) -> bytes:
    """A request header, v2 (tagged fields) for flexible versions, else v1."""
    cls = HeaderV2 if flexible else HeaderV1
    buffer = io.BytesIO()
    entity_writer(cls)(
        buffer,
        cls(
            request_api_key=i16(api_key),
            request_api_version=i16(version),
            correlation_id=i32(correlation_id),
            client_id=client_id,
        ),
    )
    return buffer.getvalue()


def request_frame(request: Any, correlation_id: int = 1, client_id: str = "wire") -> bytes:
    """A whole request frame, size prefix included, for a kio request entity."""
    api_key, version = int(request.__api_key__), int(request.__version__)
    flexible = codec.is_flexible_request(api_key, version)
    body = encode_header(api_key, version, correlation_id, flexible, client_id)
    body += codec.encode(request)
    return struct.pack(">i", len(body)) + body


def fetch_request(
    topic: str,
    partition: int = 0,
    offset: int = 0,
    *,
    max_wait_ms: int = 0,
    max_bytes: int = 1 << 20,
) -> FetchRequest:
    """A consumer's Fetch v12 of one partition (no session), ``max_bytes`` for the
    response and the partition alike."""
    return FetchRequest(
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=i32(1),
        max_bytes=i32(max_bytes),
        isolation_level=0,  # type: ignore[arg-type]
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            FetchTopic(
                topic=topic,  # type: ignore[arg-type]
                partitions=(
                    FetchPartition(
                        partition=i32(partition),
                        fetch_offset=offset,  # type: ignore[arg-type]
                        log_start_offset=-1,  # type: ignore[arg-type]
                        partition_max_bytes=i32(max_bytes),
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def init_producer_id_request(transactional_id: str | None = None) -> InitProducerIdRequest:
    """InitProducerId v4 for a new producer: idempotent, or transactional with an id."""
    return InitProducerIdRequest(
        transactional_id=transactional_id,
        transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
        producer_id=-1,
        producer_epoch=i16(-1),
    )


def produce_request(
    topic: str,
    partition: int,
    records: bytes,
    *,
    acks: int = -1,
    transactional_id: str | None = None,
    version: int = 9,
) -> Any:
    """A Produce request of one partition's ``records``, with a 10 s timeout."""
    module = codec.request_module(0, version)
    return module.ProduceRequest(
        transactional_id=transactional_id,
        acks=i16(acks),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)),
        topic_data=(
            module.TopicProduceData(
                name=topic,
                partition_data=(
                    module.PartitionProduceData(index=i32(partition), records=records),
                ),
            ),
        ),
    )
