"""Small metadata files of a log directory, in Kafka's formats.

Offset checkpoints (``recovery-point-offset-checkpoint``, ``replication-offset-checkpoint``
i.e. high watermarks, ``log-start-offset-checkpoint``), one per log directory; text::

    0                       version
    <count>
    <topic> <partition> <offset>     count lines

``partition.metadata`` in each partition directory::

    version: 0
    topic_id: <topic id: 16 bytes, base64url without padding, 22 characters>

``meta.properties`` in each log directory (Java properties; version 1 = KRaft layout)::

    version=1
    node.id=<broker id>
    cluster.id=<cluster id>
    directory.id=<uuid, base64url>

``.kafka_cleanshutdown`` in each log directory, written last on clean shutdown and removed
at start-up: ``{"version":0,"brokerEpoch":<epoch>}``.

Every write goes to ``<name>.tmp``, is fsynced, renamed over the file, and the directory
is fsynced; a write that fails leaves the old file as it was (a full disk raises
``LogDirFullError``, anything else ``KafkaStorageError``). A missing file reads as empty;
a malformed one is logged and read as empty, so a bad file never stops the broker from
starting. Plain functions; thread-safe as far
as the file system is.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Final

from odradek.protocol.types import TopicPartition
from odradek.storage.errors import KafkaStorageError, storage_error
from odradek.storage.log_files import TMP_FILE_SUFFIX

log = logging.getLogger(__name__)

RECOVERY_POINT_CHECKPOINT: Final = "recovery-point-offset-checkpoint"
HIGH_WATERMARK_CHECKPOINT: Final = "replication-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT: Final = "log-start-offset-checkpoint"
PARTITION_METADATA_FILE: Final = "partition.metadata"
META_PROPERTIES_FILE: Final = "meta.properties"
CLEAN_SHUTDOWN_FILE: Final = ".kafka_cleanshutdown"
CHECKPOINT_VERSION: Final = 0


class MalformedFileError(ValueError):
    """A metadata file that does not parse."""


def write_atomically(path: str, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the directory.

    On failure the old file is untouched and the temp file removed: LogDirFullError when
    the disk was full (nothing changed; retry later), KafkaStorageError otherwise.
    """
    tmp = path + TMP_FILE_SUFFIX
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise storage_error(f"cannot create {tmp}", exc, undone=True) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise storage_error(f"cannot write {tmp}", exc, undone=_remove(tmp)) from exc
        if fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                _remove(tmp)
                raise KafkaStorageError(f"cannot fsync {tmp}: {exc}") from exc
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise storage_error(f"cannot rename {tmp} to {path}", exc, undone=_remove(tmp)) from exc
    if fsync:
        fsync_dir(os.path.dirname(path) or ".")


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> bool:
    """Unlink ``path`` if it exists; False if that failed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def fsync_dir(directory: str) -> None:
    """fsync a directory (KafkaStorageError if that fails: its entries may be lost)."""
    try:
        _fsync_path(directory)
    except OSError as exc:
        raise KafkaStorageError(f"cannot fsync directory {directory}: {exc}") from exc


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        return None


# -- versioned line files (offset checkpoints, leader-epoch-checkpoint) -------------------


def parse_checkpoint_lines(text: str, path: str, fields: int) -> list[list[str]]:
    """Entries of Kafka's ``CheckpointFile``: version 0, a count, then that many lines."""
    lines = text.splitlines()
    if not lines:
        return []
    if lines[0].strip() != str(CHECKPOINT_VERSION):
        raise MalformedFileError(f"unrecognised version {lines[0]!r} in checkpoint file {path}")
    if len(lines) < 2:
        return []
    try:
        expected = int(lines[1])
    except ValueError:
        raise MalformedFileError(
            f"malformed line in checkpoint file {path}: {lines[1]!r}"
        ) from None
    entries = []
    for line in lines[2:]:
        parts = line.split()
        if len(parts) != fields or not all(_is_int(p) for p in parts[fields - 2 :]):
            raise MalformedFileError(f"malformed line in checkpoint file {path}: {line!r}")
        entries.append(parts)
    if len(entries) != expected:
        raise MalformedFileError(
            f"expected {expected} entries in checkpoint file {path}, but found {len(entries)}"
        )
    return entries


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def format_checkpoint(lines: list[str]) -> bytes:
    return "".join(
        f"{line}\n" for line in [str(CHECKPOINT_VERSION), str(len(lines)), *lines]
    ).encode()


def read_offset_checkpoint(path: str) -> dict[TopicPartition, int]:
    """A checkpoint's offsets; {} when missing or malformed (logged)."""
    text = _read_text(path)
    if text is None:
        return {}
    try:
        rows = parse_checkpoint_lines(text, path, 3)
        return {TopicPartition(topic, int(p)): int(offset) for topic, p, offset in rows}
    except MalformedFileError as exc:
        log.warning("ignoring checkpoint file: %s", exc)
        return {}


def write_offset_checkpoint(path: str, offsets: Mapping[TopicPartition, int]) -> None:
    lines = [f"{tp.topic} {tp.partition} {offset}" for tp, offset in sorted(offsets.items())]
    write_atomically(path, format_checkpoint(lines))


# -- partition.metadata --------------------------------------------------------------------


def encode_uuid(value: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: base64url of the 16 bytes, no padding (22 characters)."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode("ascii")


def decode_uuid(text: str) -> uuid.UUID:
    if len(text) != 22:
        raise ValueError(f"not a 22-character base64url uuid: {text!r}")
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


def write_partition_metadata(
    partition_dir: str, topic_id: uuid.UUID, *, fsync: bool = True
) -> None:
    data = f"version: 0\ntopic_id: {encode_uuid(topic_id)}".encode()
    write_atomically(os.path.join(partition_dir, PARTITION_METADATA_FILE), data, fsync=fsync)


def fsync_partition_metadata(partition_dir: str) -> None:
    """Make a ``partition.metadata`` written without fsync durable, with its directory."""
    try:
        _fsync_path(os.path.join(partition_dir, PARTITION_METADATA_FILE))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise KafkaStorageError(f"cannot fsync {partition_dir}/partition.metadata: {exc}") from exc
    fsync_dir(partition_dir)


def read_partition_metadata(partition_dir: str) -> uuid.UUID | None:
    """The topic id in ``partition.metadata``; None when missing or malformed (logged)."""
    path = os.path.join(partition_dir, PARTITION_METADATA_FILE)
    text = _read_text(path)
    if text is None:
        return None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    try:
        if fields.get("version") != "0":
            raise ValueError(f"unsupported version {fields.get('version')!r}")
        return decode_uuid(fields["topic_id"].strip())
    except (KeyError, ValueError) as exc:
        log.warning("ignoring malformed %s: %s", path, exc)
        return None


# -- meta.properties -----------------------------------------------------------------------


def write_meta_properties(
    log_dir: str, *, node_id: int, cluster_id: str, directory_id: uuid.UUID
) -> None:
    text = (
        "#\n#Written by odradek\n"
        f"node.id={node_id}\ndirectory.id={encode_uuid(directory_id)}\n"
        f"version=1\ncluster.id={cluster_id}\n"
    )
    write_atomically(os.path.join(log_dir, META_PROPERTIES_FILE), text.encode())


def read_meta_properties(log_dir: str) -> dict[str, str]:
    """Key/value pairs of ``meta.properties`` ({} when missing)."""
    text = _read_text(os.path.join(log_dir, META_PROPERTIES_FILE))
    if text is None:
        return {}
    props = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#!" and "=" in stripped:
            key, value = stripped.split("=", 1)
            props[key.strip()] = value.strip()
    return props


# -- clean shutdown marker -----------------------------------------------------------------


def write_clean_shutdown_marker(log_dir: str, broker_epoch: int = -1) -> None:
    data = json.dumps({"version": 0, "brokerEpoch": broker_epoch}, separators=(",", ":"))
    write_atomically(os.path.join(log_dir, CLEAN_SHUTDOWN_FILE), data.encode())


def has_clean_shutdown_marker(log_dir: str) -> bool:
    return os.path.exists(os.path.join(log_dir, CLEAN_SHUTDOWN_FILE))


def remove_clean_shutdown_marker(log_dir: str) -> None:
    try:
        os.unlink(os.path.join(log_dir, CLEAN_SHUTDOWN_FILE))
    except FileNotFoundError:
        pass
    else:
        fsync_dir(log_dir)
