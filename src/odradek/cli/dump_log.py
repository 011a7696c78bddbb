"""``odradek dump-log FILE...``: print what a log segment file holds, as Kafka's
``kafka-dump-log.sh --files`` does, reading the files directly (no broker needed).

- ``.log``: one line per batch (offsets, count, producer id / epoch / sequences,
  leader epoch, transactional and control flags, the KIP-534 delete horizon, position,
  timestamp, size, codec, CRC and whether it matches); with ``--deep-iteration`` (or
  ``--print-data-log``, which implies it) one ``| offset: ...`` line per record, control
  records shown as their transaction marker; ``--print-data-log`` adds keys and values.
- ``.index``: ``offset: O position: P``; ``.timeindex``: ``timestamp: T offset: O``;
  ``.txnindex``: the aborted transactions; ``.snapshot``: the producer state entries.

Meant for files of a stopped broker or copies; a file being written may end mid-batch,
which is reported, not an error.
"""

from __future__ import annotations

import copy
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from odradek.cli.common import CliError, reported_errors, usage_error
from odradek.protocol import records as batch
from odradek.protocol.record_codec import (
    RecordDecodeError,
    control_record_type,
    decode_records,
    read_end_txn_marker,
)
from odradek.protocol.records import BatchHeader, CompressionType
from odradek.storage import log_files
from odradek.storage.errors import CorruptSnapshotError
from odradek.storage.file_records import FileHandle, iter_headers
from odradek.storage.producer_state import read_snapshot
from odradek.storage.txn_index import parse_entries

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")
_CONTROL_NAMES = {0: "ABORT", 1: "COMMIT"}


def register(app: typer.Typer) -> None:
    app.command("dump-log")(dump_log)


def dump_log(
    files: Annotated[list[Path], typer.Argument(help="Segment files (.log, .index, ...).")],
    deep_iteration: Annotated[
        bool, typer.Option("--deep-iteration", help="One line per record, not per batch.")
    ] = False,
    print_data_log: Annotated[
        bool,
        typer.Option("--print-data-log", help="Print keys and values (implies --deep-iteration)."),
    ] = False,
) -> None:
    """Print the batches, records and index entries of log segment files."""
    with reported_errors():
        for path in files:
            for line in dump_file(path, deep=deep_iteration or print_data_log, data=print_data_log):
                typer.echo(line)


def dump_file(path: Path, *, deep: bool, data: bool) -> Iterator[str]:
    if not path.is_file():
        raise usage_error(
            f"{path} is not a file; give segment files such as 00000000000000000000.log"
        )
    name = path.name
    base = log_files.offset_from_file_name(name)
    yield f"Dumping {path}"
    if name.endswith(log_files.LOG_FILE_SUFFIX):
        yield from _dump_log(path, deep=deep, data=data)
    elif name.endswith(log_files.INDEX_FILE_SUFFIX):
        yield from _dump_offset_index(path, base or 0)
    elif name.endswith(log_files.TIME_INDEX_FILE_SUFFIX):
        yield from _dump_time_index(path, base or 0)
    elif name.endswith(log_files.TXN_INDEX_FILE_SUFFIX):
        yield from _dump_txn_index(path, base or 0)
    elif name.endswith(log_files.PRODUCER_SNAPSHOT_FILE_SUFFIX):
        yield from _dump_snapshot(path)
    else:
        raise usage_error(
            f"{name}: unknown file kind; expected .log, .index, .timeindex, .txnindex or .snapshot"
        )


def _dump_log(path: Path, *, deep: bool, data: bool) -> Iterator[str]:
    base = log_files.offset_from_file_name(path.name)
    if base is not None:
        yield f"Log starting offset: {base}"
    size = path.stat().st_size
    try:
        handle = FileHandle.open(str(path), writable=False)
    except OSError as exc:
        raise CliError(f"cannot open {path}: {exc.strerror}") from exc
    end = 0
    try:
        for header in iter_headers(handle, 0, size):
            raw = handle.pread(header.size, header.position)
            valid = batch.compute_crc(raw, 0, header.size) == header.crc
            yield _batch_line(header, valid)
            end = header.position + header.size
            if deep:
                yield from _record_lines(header, raw, data=data)
    finally:
        handle.close()
    if end < size:
        yield f"Found {size - end} bytes at position {end} that are not a whole valid batch"


def _batch_line(header: BatchHeader, valid: bool) -> str:
    timestamp_type = (
        "LogAppendTime"
        if header.timestamp_type == batch.TimestampType.LOG_APPEND_TIME
        else "CreateTime"
    )
    horizon = (
        f"OptionalLong[{header.base_timestamp}]"
        if header.attributes & batch.DELETE_HORIZON_FLAG
        else "OptionalLong.empty"
    )
    codec = CompressionType(header.compression).name.lower()
    return (
        f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} "
        f"count: {header.records_count} baseSequence: {header.base_sequence} "
        f"lastSequence: {header.last_sequence} producerId: {header.producer_id} "
        f"producerEpoch: {header.producer_epoch} "
        f"partitionLeaderEpoch: {header.partition_leader_epoch} "
        f"isTransactional: {str(header.is_transactional).lower()} "
        f"isControl: {str(header.is_control).lower()} deleteHorizonMs: {horizon} "
        f"position: {header.position} {timestamp_type}: {header.max_timestamp} "
        f"size: {header.size} magic: {header.magic} compresscodec: {codec} "
        f"crc: {header.crc} isvalid: {str(valid).lower()}"
    )


def _record_lines(header: BatchHeader, raw: bytes, *, data: bool) -> Iterator[str]:
    local = copy.copy(header)
    local.position = 0
    try:
        records = decode_records(raw, local)
    except RecordDecodeError as exc:
        yield f"| records cannot be read: {exc}"
        return
    kind = (
        "LogAppendTime"
        if header.timestamp_type == batch.TimestampType.LOG_APPEND_TIME
        else "CreateTime"
    )
    for record in records:
        sequence = (
            -1
            if header.base_sequence < 0
            else header.base_sequence + record.offset - header.base_offset
        )
        keys = ",".join(name for name, _ in record.headers)
        line = (
            f"| offset: {record.offset} {kind}: {record.timestamp} "
            f"keySize: {_size(record.key)} valueSize: {_size(record.value)} "
            f"sequence: {sequence} headerKeys: [{keys}]"
        )
        if header.is_control:
            line += " " + _control_text(local, raw, record.key)
        elif data:
            line += f" key: {_text(record.key)} payload: {_text(record.value)}"
        yield line


def _size(value: bytes | None) -> int:
    return -1 if value is None else len(value)


def _text(value: bytes | None) -> str:
    return "null" if value is None else value.decode("utf-8", "replace")


def _control_text(header: BatchHeader, raw: bytes, key: bytes | None) -> str:
    try:
        kind = control_record_type(key)
        marker = read_end_txn_marker(raw, header) if kind in _CONTROL_NAMES else None
    except RecordDecodeError:
        return "controlRecord: unreadable"
    if marker is not None:
        return f"endTxnMarker: {_CONTROL_NAMES[kind]} coordinatorEpoch: {marker.coordinator_epoch}"
    return f"controlType: UNKNOWN({kind})"


def _dump_offset_index(path: Path, base: int) -> Iterator[str]:
    for relative, position in _entries(path, _OFFSET_ENTRY):
        yield f"offset: {base + relative} position: {position}"
    yield from _trailing(path, _OFFSET_ENTRY)


def _dump_time_index(path: Path, base: int) -> Iterator[str]:
    for timestamp, relative in _entries(path, _TIME_ENTRY):
        yield f"timestamp: {timestamp} offset: {base + relative}"
    yield from _trailing(path, _TIME_ENTRY)


def _entries(path: Path, entry: struct.Struct) -> Iterator[tuple[int, ...]]:
    raw = path.read_bytes()
    return entry.iter_unpack(raw[: len(raw) - len(raw) % entry.size])


def _trailing(path: Path, entry: struct.Struct) -> Iterator[str]:
    extra = path.stat().st_size % entry.size
    if extra:
        yield f"Found {extra} trailing bytes that are not a whole entry"


def _dump_txn_index(path: Path, base: int) -> Iterator[str]:
    entries, problem = parse_entries(path.read_bytes(), base)
    for entry in entries:
        yield (
            f"version: 0 producerId: {entry.producer_id} firstOffset: {entry.first_offset} "
            f"lastOffset: {entry.last_offset} lastStableOffset: {entry.last_stable_offset}"
        )
    if problem is not None:
        yield f"Found a bad entry: {problem}"


def _dump_snapshot(path: Path) -> Iterator[str]:
    try:
        entries = read_snapshot(os.fspath(path))
    except CorruptSnapshotError as exc:
        raise CliError(str(exc)) from exc
    for entry in entries:
        first = entry.batches[0] if entry.batches else None
        yield (
            f"producerId: {entry.producer_id} producerEpoch: {entry.producer_epoch} "
            f"coordinatorEpoch: {entry.coordinator_epoch} "
            f"currentTxnFirstOffset: {entry.current_txn_first_offset} "
            f"lastTimestamp: {entry.last_timestamp} "
            f"lastSequence: {entry.last_seq} lastOffset: {entry.last_data_offset} "
            f"offsetDelta: {first.offset_delta if first else 0}"
        )
