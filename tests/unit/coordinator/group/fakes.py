"""A ``__consumer_offsets`` partition in memory, as real record batches."""

from __future__ import annotations

import struct

from odradek.coordinator.group.group_manager import TxnProducer
from odradek.coordinator.group.records import Key, Value, encode_key, encode_value
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch, build_end_txn_marker
from odradek.protocol.records import iter_headers


class OffsetsLog:
    """The shard's writer: each write becomes one record batch (transactional, with the
    producer's id and epoch, for a TxnOffsetCommit) at the log end; ``marker`` appends a
    transaction marker as the broker does for WriteTxnMarkers. ``data`` is what the log
    holds, for the loader. Can be told to fail."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.end_offset = 0
        self.fail_with: ErrorCode | None = None

    def __call__(
        self, records: list[tuple[Key, Value | None]], producer: TxnProducer | None = None, /
    ) -> int:
        if self.fail_with is not None:
            raise KafkaError("write failed", self.fail_with)
        spec = BatchSpec(base_offset=self.end_offset)
        if producer is not None:
            spec = BatchSpec(
                base_offset=self.end_offset,
                producer_id=producer.producer_id,
                producer_epoch=producer.producer_epoch,
                base_sequence=0,
                transactional=True,
            )
        new = [
            NewRecord(key=encode_key(k), value=None if v is None else encode_value(v))
            for k, v in records
        ]
        return self.append_batch(build_batch(new, spec))

    def marker(self, producer_id: int, *, commit: bool, producer_epoch: int = 0) -> int:
        """Append a commit/abort marker; its offset."""
        batch = build_end_txn_marker(
            producer_id, producer_epoch, commit=commit, coordinator_epoch=0
        )
        return self.append_batch(batch)

    def append_batch(self, batch: bytes) -> int:
        """Append a batch at the log end (its base offset patched in); its base offset."""
        patched = bytearray(batch)
        struct.pack_into(">q", patched, 0, self.end_offset)  # the base offset, outside the CRC
        first = self.end_offset
        self.data += patched
        (header,) = iter_headers(patched)
        self.end_offset = header.next_offset
        return first

    def headers(self) -> list[tuple[int, int, bool, bool]]:
        """(base offset, producer id, transactional, control) of every batch."""
        return [
            (h.base_offset, h.producer_id, h.is_transactional, h.is_control)
            for h in iter_headers(self.data)
        ]
