"""Real file systems that run out of space or fail, for the disk fault tests.

- ``tmpfs(directory, size_kib)``: a size-limited tmpfs; writes past the size fail with
  ENOSPC at once (no delayed allocation), and ``remount_size`` grows it in place.
- ``ext4_image(directory, size_mib)``: an ext4 file system on a loop device, mounted with
  ``errors=remount-ro``. ``fail_ext4`` raises a file system error through the kernel's
  ``trigger_fs_error`` knob, and ext4 does what it does after a real I/O error: it turns
  itself read-only at once, with files still open, so every later write, fsync,
  truncate or create fails with EROFS while reads still work. (A plain ``mount -o
  remount,ro`` is refused while a process holds a file open for writing, as a broker
  always does.)

Mounting needs root and a kernel that allows it; when it is not possible the test is
skipped with a message saying so. Every mount is undone when the context exits (lazily if
something still holds it open), and the loop device is released with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _skip_unless_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root to mount a file system; this machine forbids it")


def _unmount(directory: Path) -> None:
    if _run("umount", str(directory)).returncode != 0:
        _run("umount", "-l", str(directory))


@contextmanager
def tmpfs(directory: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted on ``directory`` (created if needed)."""
    _skip_unless_root("a size-limited log dir (tmpfs)")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(directory))
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is forbidden here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        _unmount(directory)


def remount_size(directory: Path, size_kib: int) -> None:
    """Resize a mounted tmpfs in place (open files stay open)."""
    done = _run("mount", "-o", f"remount,size={size_kib}k", str(directory))
    assert done.returncode == 0, done.stderr


def fill(directory: Path, name: str = "filler", leave_kib: int = 0) -> Path:
    """Write a file that takes all the free space of ``directory``'s file system but
    ``leave_kib`` KiB; returns its path."""
    path = directory / name
    stats = os.statvfs(directory)
    room = stats.f_bavail * stats.f_frsize - leave_kib * 1024
    chunk = b"\0" * 65536
    with path.open("wb") as file:
        while room > 0:
            try:
                room -= file.write(chunk[: min(room, len(chunk))])
                file.flush()
            except OSError:
                break
    return path


@contextmanager
def ext4_image(directory: Path, size_mib: int) -> Iterator[Path]:
    """An ext4 file system of ``size_mib`` MiB (no reserved blocks) on a loop device,
    mounted with ``errors=remount-ro`` on ``directory``/mnt."""
    _skip_unless_root("a failing log dir (ext4 on a loop device)")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed, so no failing log dir can be made")
    image = directory / "disk.img"
    mount_point = directory / "mnt"
    mount_point.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as file:
        file.truncate(size_mib << 20)
    made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    mounted = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(mount_point))
    if mounted.returncode != 0:
        image.unlink()
        pytest.skip(f"mounting a loop device is forbidden here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        _unmount(mount_point)
        image.unlink(missing_ok=True)


def fail_ext4(mount_point: Path) -> None:
    """Make the ext4 file system on ``mount_point`` fail: it turns read-only at once."""
    source = _run("findmnt", "-n", "-o", "SOURCE", str(mount_point)).stdout.strip()
    knob = Path("/sys/fs/ext4") / os.path.basename(source) / "trigger_fs_error"
    if not knob.exists():
        pytest.skip(f"this kernel has no {knob} to make a file system fail")
    knob.write_text("odradek disk fault test\n")
    probe = mount_point / ".probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return
    probe.unlink()
    raise AssertionError(f"{mount_point} is still writable after trigger_fs_error")
