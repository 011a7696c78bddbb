"""A blocking Kafka protocol client for the few admin APIs librdkafka does not offer.

confluent-kafka has no DescribeTransactions, ListTransactions, DescribeProducers or
WriteTxnMarkers, which ``odradek transactions`` needs (Kafka's own
``kafka-transactions`` tool uses the Java Admin client's). For those the CLI sends the
requests itself: one connection per broker, one request at a time, kio entities encoded
by ``protocol.codec``. Broker addresses come from confluent-kafka's metadata. PLAINTEXT
only: the command refuses a ``security.protocol`` other than PLAINTEXT rather than send
credentials nowhere.
"""

from __future__ import annotations

import itertools
import socket
import struct
from types import TracebackType
from typing import Any

from odradek.cli.common import (
    REQUEST_TIMEOUT_S,
    ClientOptions,
    CliError,
    admin_client,
    client_config,
    fetch_metadata,
    kafka_error_name,
    usage_error,
)
from odradek.protocol import codec

_SIZE = struct.Struct(">i")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class BrokerConnection:
    """One TCP connection to one broker."""

    def __init__(self, host: str, port: int, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.address = f"{host}:{port}"
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise CliError(f"cannot connect to broker {self.address}: {exc}") from None
        self._correlation = itertools.count(1)

    def __enter__(self) -> BrokerConnection:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close()

    def send(self, request: Any) -> Any:
        """Send ``request`` (a kio request entity) and return the decoded response."""
        body = self.send_for_body(request)
        return codec.decode_response(int(request.__api_key__), int(request.__version__), body)[1]

    def send_for_body(self, request: Any) -> bytes:
        """Send ``request`` and return the response body (after the correlation id) for a
        caller that decodes it itself."""
        correlation_id = next(self._correlation)
        frame = codec.request_bytes(request, correlation_id, "odradek-cli")
        try:
            self._socket.sendall(_SIZE.pack(len(frame)) + frame)
            size = _SIZE.unpack(self._read(_SIZE.size))[0]
            if not 4 <= size <= MAX_RESPONSE_BYTES:
                raise CliError(f"broker {self.address} sent a response of {size} bytes")
            body = self._read(size)
        except OSError as exc:
            raise CliError(f"lost the connection to broker {self.address}: {exc}") from None
        received = int.from_bytes(body[:4], "big", signed=True)
        if received != correlation_id:
            raise CliError(f"broker {self.address} answered another request ({received})")
        return body

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._socket.recv(size - len(chunks))
            if not chunk:
                raise CliError(f"broker {self.address} closed the connection")
            chunks += chunk
        return bytes(chunks)


def build_request(api_key: int, version: int, **fields: Any) -> Any:
    """A kio request entity of any version, built from a superset of fields."""
    return codec.build(codec.request_class(api_key, version), **fields)


def wire_brokers(options: ClientOptions, command: str) -> dict[int, tuple[str, int]]:
    """Every broker's (host, port) from the cluster metadata, for ``command``'s raw
    requests; a usage error unless the client config says PLAINTEXT."""
    config = client_config(options)
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    if protocol != "plaintext":
        raise usage_error(
            f"{command} speaks PLAINTEXT only; security.protocol={protocol} is not supported"
        )
    metadata = fetch_metadata(admin_client(options), options.bootstrap)
    return {broker.id: (str(broker.host), broker.port) for broker in metadata.brokers.values()}


def error_of(code: int, what: str, message: str | None = None) -> CliError:
    """``what: ERROR_NAME[: message]`` for a Kafka error code."""
    name = kafka_error_name(code) or str(code)
    return CliError(f"{what}: {name}" + (f": {message}" if message else ""))
