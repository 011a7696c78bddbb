"""``__transaction_state`` records: Kafka's bytes, round trips, and refusal of garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.coordinator.group import records as group_records
from odradek.coordinator.transaction import records
from odradek.coordinator.transaction.records import (
    RecordFormatError,
    TransactionLogKey,
    TransactionLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from odradek.coordinator.transaction.state import TransactionState
from odradek.protocol.types import TopicPartition

TIMESTAMP = 0x19E7B4B367A


def ongoing(**overrides: object) -> TransactionLogValue:
    fields: dict[str, object] = {
        "producer_id": 0,
        "producer_epoch": 0,
        "transaction_timeout_ms": 60_000,
        "state": TransactionState.ONGOING,
        "partitions": frozenset({TopicPartition("txtest", 0)}),
        "last_update_timestamp_ms": TIMESTAMP,
        "start_timestamp_ms": TIMESTAMP,
    }
    fields.update(overrides)
    return TransactionLogValue(**fields)  # type: ignore[arg-type]


def test_key_bytes_are_kafkas() -> None:
    # int16 version 0, then the id as an int16-length string.
    assert encode_key(TransactionLogKey("txtest")) == bytes.fromhex("0000 0006 747874657374")
    assert decode_key(bytes.fromhex("0000 0006 747874657374")) == TransactionLogKey("txtest")


def test_flexible_value_bytes_are_kafkas() -> None:
    """TransactionLogValue v1 as Kafka 4 writes it at transaction.version 1: an Ongoing
    transaction with one partition, no tagged field at a non-default value."""
    expected = bytes.fromhex(
        "0001"  # version 1
        "0000000000000000"  # producer id 0
        "0000"  # producer epoch 0
        "0000ea60"  # timeout 60000 ms
        "01"  # status: Ongoing
        "02"  # partitions: compact array of 1
        "07 747874657374"  # topic: compact string "txtest"
        "02 00000000"  # partition ids: compact array [0]
        "00"  # the entry's tagged fields: none
        "0000019e7b4b367a"  # last update
        "0000019e7b4b367a"  # start
        "00"  # the value's tagged fields: none
    )
    assert encode_value(ongoing()) == expected
    assert decode_value(expected) == ongoing()


def test_version_0_value_bytes_are_kafkas() -> None:
    expected = bytes.fromhex(
        "0000"  # version 0
        "000000000000002a"  # producer id 42
        "0003"  # epoch 3
        "0000ea60"  # timeout
        "02"  # PrepareCommit
        "00000002"  # partitions: 2 topics (int32 count)
        "0001 61 00000002 00000000 00000003"  # "a": [0, 3]
        "0001 62 00000001 00000001"  # "b": [1]
        "0000019e7b4b367a"
        "0000019e7b4b367a"
    )
    value = ongoing(
        producer_id=42,
        producer_epoch=3,
        state=TransactionState.PREPARE_COMMIT,
        partitions=frozenset(
            {TopicPartition("b", 1), TopicPartition("a", 3), TopicPartition("a", 0)}
        ),
    )
    assert encode_value(value, version=0) == expected
    assert decode_value(expected) == value


def test_empty_state_writes_a_null_partition_array() -> None:
    empty = ongoing(state=TransactionState.EMPTY, partitions=frozenset(), start_timestamp_ms=-1)
    v1 = encode_value(empty)
    assert v1[2 + 8 + 2 + 4 + 1] == 0x00  # compact null
    v0 = encode_value(empty, version=0)
    assert v0[2 + 8 + 2 + 4 + 1 : 2 + 8 + 2 + 4 + 1 + 4] == b"\xff\xff\xff\xff"
    assert decode_value(v1) == empty
    assert decode_value(v0) == empty
    with pytest.raises(ValueError, match="no partitions"):
        encode_value(ongoing(state=TransactionState.EMPTY))


def test_tagged_fields_written_only_when_set_and_read_back() -> None:
    value = ongoing(previous_producer_id=7, next_producer_id=9, client_transaction_version=2)
    data = encode_value(value)
    tags = [
        "03",  # three tagged fields, in tag order, after the start timestamp
        "00 08 0000000000000007",  # tag 0, 8 bytes: previous producer id
        "01 08 0000000000000009",  # tag 1, 8 bytes: next producer id
        "02 02 0002",  # tag 2, 2 bytes: client transaction version
    ]
    assert data.endswith(bytes.fromhex(" ".join(tags)))
    assert decode_value(data) == value
    with pytest.raises(ValueError, match="version 1"):
        encode_value(value, version=0)


def test_unknown_tagged_fields_are_skipped() -> None:
    data = encode_value(ongoing())
    with_unknown = data[:-1] + bytes.fromhex("01 05 03 aabbcc")
    assert decode_value(with_unknown) == ongoing()


def test_tombstone_and_unknown_versions() -> None:
    assert decode_value(None) is None
    with pytest.raises(RecordFormatError, match="version 2"):
        decode_value(b"\x00\x02" + encode_value(ongoing())[2:])
    with pytest.raises(RecordFormatError, match="key version 1"):
        decode_key(b"\x00\x01\x00\x01a")
    with pytest.raises(RecordFormatError, match="state id 9"):
        decode_value(encode_value(ongoing())[:16] + b"\x09" + encode_value(ongoing())[17:])


def test_partition_for_is_the_group_coordinators() -> None:
    """One Java String.hashCode for both coordinators (Kafka's partitionFor)."""
    assert records.partition_for is group_records.partition_for
    assert (
        records.partition_for("my-transactional-id", 50)
        == (group_records.java_string_hash("my-transactional-id") & 0x7FFFFFFF) % 50
    )


# -- properties ----------------------------------------------------------------------------

names = st.text(min_size=0, max_size=30)
int16s = st.integers(-(2**15), 2**15 - 1)
int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)
partitions = st.frozensets(
    st.builds(TopicPartition, st.text(min_size=1, max_size=10), st.integers(0, 2**31 - 1)),
    max_size=8,
)


@st.composite
def values(draw: st.DrawFn, *, tags: bool = True) -> TransactionLogValue:
    state = draw(st.sampled_from(TransactionState))
    return TransactionLogValue(
        producer_id=draw(int64s),
        producer_epoch=draw(int16s),
        transaction_timeout_ms=draw(int32s),
        state=state,
        partitions=frozenset() if state is TransactionState.EMPTY else draw(partitions),
        last_update_timestamp_ms=draw(int64s),
        start_timestamp_ms=draw(int64s),
        previous_producer_id=draw(int64s) if tags else -1,
        next_producer_id=draw(int64s) if tags else -1,
        client_transaction_version=draw(int16s) if tags else 0,
    )


@given(names)
def test_key_round_trip(transactional_id: str) -> None:
    key = TransactionLogKey(transactional_id)
    assert decode_key(encode_key(key)) == key


@given(values())
def test_flexible_value_round_trip(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value)) == value


@given(values(tags=False))
def test_version_0_value_round_trip(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value, version=0)) == value


@given(values(), st.data())
def test_every_truncation_is_refused(value: TransactionLogValue, data: st.DataObject) -> None:
    encoded = encode_value(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(RecordFormatError):
        decode_value(encoded[:cut])


@given(st.binary(max_size=200))
def test_garbage_is_refused_cleanly(data: bytes) -> None:
    """Whatever the bytes, a value or RecordFormatError, never another exception (and
    never an allocation sized by a lying count)."""
    with contextlib.suppress(RecordFormatError):
        decode_value(data)
    with contextlib.suppress(RecordFormatError):
        decode_key(data)
