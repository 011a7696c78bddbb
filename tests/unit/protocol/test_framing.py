from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from odradek.protocol import codec
from odradek.protocol.framing import FrameDecoder, FrameError


def framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


@given(
    bodies=st.lists(st.binary(min_size=8, max_size=300), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=200),
)
def test_frames_survive_any_split_of_the_stream(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(framed(b) for b in bodies)
    decoder = FrameDecoder(max_size=1024)
    out: list[bytes] = []
    position = 0
    for cut in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        if position >= len(stream):
            break
        out += decoder.feed(stream[position : position + cut])
        position += cut
    out += decoder.feed(stream[position:])
    assert out == bodies
    assert decoder.buffered == 0


def test_oversized_frame_is_rejected_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_size=1000)
    with pytest.raises(FrameError):
        decoder.feed(struct.pack(">i", 1001))
    assert decoder.buffered == 0


@pytest.mark.parametrize("size", [-1, -(2**31), 0, 7])
def test_negative_and_tiny_sizes_are_rejected(size: int) -> None:
    with pytest.raises(FrameError):
        FrameDecoder(max_size=1000).feed(struct.pack(">i", size) + b"x" * 8)


def test_http_request_on_kafka_port_is_rejected_at_once() -> None:
    with pytest.raises(FrameError):
        FrameDecoder(max_size=104857600).feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_huge_declared_size_does_not_allocate() -> None:
    decoder = FrameDecoder(max_size=2**31 - 1)
    decoder.feed(struct.pack(">i", 2**31 - 1) + b"abc")
    assert decoder.buffered == 7


def test_frames_decode_with_kio() -> None:
    """Frames are bytearrays (the produce path patches them); kio must still read them."""
    body = codec.encode(
        ApiVersionsRequest(client_software_name="librdkafka", client_software_version="2.16")
    )
    (frame,) = FrameDecoder(max_size=1000).feed(framed(b"\x00" * 8 + body))
    assert isinstance(frame, bytearray)
    decoded = codec.decode_request(18, 3, frame, 8)
    assert decoded.client_software_name == "librdkafka"


def test_a_frame_trickled_byte_by_byte_costs_about_its_size() -> None:
    """Each kept chunk has bookkeeping of its own; small ones are merged, so a client
    sending one byte per segment does not make the broker hold many times what it sent."""
    body = bytes(range(256)) * 200  # 51,200 bytes
    stream = struct.pack(">i", len(body)) + body
    decoder = FrameDecoder(1 << 20)
    tracemalloc.start()
    try:
        frames = []
        for i in range(len(stream)):
            frames += decoder.feed(stream[i : i + 1])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frames == [bytearray(body)]
    assert peak < 3 * len(body)
