"""Kafka error codes, and the exception that carries one from any layer to a response."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode", "KafkaError"]


class KafkaError(Exception):
    """An error a client caused or must be told about, with the Kafka error code to send.

    Layers below the broker raise subclasses (storage's CorruptRecordError, ...); request
    handlers turn them into the error code of the partition or request they concern.
    """

    error_code: ErrorCode = ErrorCode.unknown_server_error

    def __init__(self, message: str = "", error_code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code

    @property
    def message(self) -> str:
        return str(self)
