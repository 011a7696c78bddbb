"""Many idle client connections, held open by one process (for ``scale.py``).

Usage: ``python benchmarks/_idle_clients.py HOST:PORT COUNT``. Opens COUNT TCP
connections, sends one ApiVersions v3 request on each (what every Kafka client sends
first), reads each whole response, prints ``ready <answered> <failed>`` and then holds
the connections, sending nothing, until its stdin closes. Then it closes them all and
exits 0.

ApiVersions v3 request, written by hand (flexible, request header v2)::

    int32 size | int16 api_key=18 | int16 api_version=3 | int32 correlation_id
    | int16 client_id length + bytes | uvarint 0 (header tagged fields)
    | compact string client_software_name | compact string client_software_version
    | uvarint 0 (body tagged fields)
"""

from __future__ import annotations

import resource
import selectors
import socket
import struct
import sys
import time

CLIENT_ID = b"idle-client"
SOFTWARE = b"odradek-scale"
VERSION = b"1.0"


def api_versions_request(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", 18, 3, correlation_id, len(CLIENT_ID)) + CLIENT_ID + b"\x00"
    body += bytes([len(SOFTWARE) + 1]) + SOFTWARE + bytes([len(VERSION) + 1]) + VERSION
    body += b"\x00"
    return struct.pack(">i", len(body)) + body


def read_response(sock: socket.socket, deadline: float) -> bool:
    """Read one size-prefixed response; False on a closed connection or timeout."""
    data = b""
    need = 4
    size = None
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
        if size is None and len(data) >= 4:
            size = struct.unpack(">i", data[:4])[0]
            need = 4 + size
        if size is not None and len(data) >= need:
            return True
    return False


def main(argv: list[str]) -> int:
    host, port = argv[1].rsplit(":", 1)
    count = int(argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    sockets: list[socket.socket] = []
    answered = failed = 0
    try:
        for n in range(count):
            try:
                sock = socket.create_connection((host, int(port)), timeout=10)
                sock.sendall(api_versions_request(n))
                if read_response(sock, time.monotonic() + 10):
                    answered += 1
                else:
                    failed += 1
                sockets.append(sock)
            except OSError:
                failed += 1
        sys.stdout.write(f"ready {answered} {failed}\n")
        sys.stdout.flush()
        selector = selectors.DefaultSelector()
        selector.register(sys.stdin, selectors.EVENT_READ)
        while True:  # idle until the driver closes our stdin
            if selector.select(timeout=1.0) and not sys.stdin.readline():
                break
    finally:
        for sock in sockets:
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
