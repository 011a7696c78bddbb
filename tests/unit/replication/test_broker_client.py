"""The broker-to-broker client reads each response frame into a buffer of its own size,
whatever pieces the socket delivers it in (``_ResponseFrames``)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from odradek.replication.broker_client import BrokerConnectionError, _ResponseFrames


def deliver(frames: _ResponseFrames, data: bytes, piece: int) -> None:
    """Feed ``data`` as the event loop would, at most ``piece`` bytes per read."""
    while data:
        buffer = frames.get_buffer(-1)
        n = min(len(buffer), piece, len(data))
        buffer[:n] = data[:n]
        frames.buffer_updated(n)
        data = data[n:]


@pytest.mark.parametrize("piece", [1, 3, 7, 1 << 20])
def test_frames_arrive_whole_from_any_pieces(piece: int) -> None:
    async def run() -> list[bytes]:
        frames = _ResponseFrames()
        got = []
        for body in (b"\x00\x00\x00\x01first", b"\x00\x00\x00\x02" + bytes(range(256)) * 40):
            answer = frames.expect()
            deliver(frames, struct.pack(">i", len(body)) + body, piece)
            got.append(bytes(await answer))
        return got

    first, second = asyncio.run(run())
    assert first == b"\x00\x00\x00\x01first"
    assert second[4:] == bytes(range(256)) * 40


def test_an_absurd_size_prefix_fails_the_call() -> None:
    async def run() -> None:
        frames = _ResponseFrames()
        answer = frames.expect()
        deliver(frames, struct.pack(">i", -5), 4)
        await answer

    with pytest.raises(BrokerConnectionError, match="-5 bytes refused"):
        asyncio.run(run())


def test_a_connection_closed_mid_frame_fails_the_call_and_later_ones() -> None:
    async def run() -> None:
        frames = _ResponseFrames()
        answer = frames.expect()
        deliver(frames, struct.pack(">i", 100) + b"partial", 4)
        frames.eof_received()
        with pytest.raises(EOFError):
            await answer
        await frames.expect()

    with pytest.raises(EOFError):
        asyncio.run(run())


def test_a_response_nobody_asked_for_is_an_error() -> None:
    async def run() -> None:
        frames = _ResponseFrames()
        deliver(frames, struct.pack(">i", 4) + b"\x00\x00\x00\x09", 8)
        await frames.expect()

    with pytest.raises(BrokerConnectionError, match="no request asked for"):
        asyncio.run(run())
