from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.request_header.v1.header import RequestHeader as HeaderV1
from kio.schema.request_header.v2.header import RequestHeader as HeaderV2
from kio.serial import entity_writer
from kio.static.primitive import i16, i32

from odradek.protocol.headers import HeaderError, parse_request_header, peek_api, response_head


def encode(header: object) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(header))(buffer, header)
    return buffer.getvalue()


@given(
    api_key=st.integers(0, 100),
    version=st.integers(0, 20),
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    client_id=st.none() | st.text(max_size=40),
    flexible=st.booleans(),
)
def test_header_round_trip_against_kio(
    api_key: int, version: int, correlation_id: int, client_id: str | None, flexible: bool
) -> None:
    cls = HeaderV2 if flexible else HeaderV1
    raw = encode(
        cls(
            request_api_key=i16(api_key),
            request_api_version=i16(version),
            correlation_id=i32(correlation_id),
            client_id=client_id,
        )
    )
    header = parse_request_header(raw + b"body", flexible)
    assert (header.api_key, header.api_version, header.correlation_id) == (
        api_key,
        version,
        correlation_id,
    )
    assert header.client_id == client_id
    assert header.size == len(raw)
    assert peek_api(raw) == (api_key, version, correlation_id)


def test_client_id_longer_than_frame_is_an_error() -> None:
    with pytest.raises(HeaderError):
        parse_request_header(b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x50abc", flexible=False)


def test_tagged_fields_running_past_the_frame_are_an_error() -> None:
    frame = b"\x00\x03\x00\x0c\x00\x00\x00\x01\xff\xff" + b"\x01\x00\x7f"
    with pytest.raises(HeaderError):
        parse_request_header(frame, flexible=True)


def test_response_headers() -> None:
    assert response_head(7, flexible=False, body_size=3) == b"\x00\x00\x00\x07" * 2
    assert response_head(7, flexible=True, body_size=2) == b"\x00\x00\x00\x07" * 2 + b"\x00"
