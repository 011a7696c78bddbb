"""Slow, churning and surplus clients against a running broker, measured from ``/proc``.

Each function runs one campaign and returns its figures; ``tests/integration/
test_slow_clients.py`` asserts on them and ``python -m tests.fuzz.report`` prints them.

- ``stalled_consumers``: raw connections pipeline Fetch requests for a large topic and
  never read a byte, while a producer keeps producing; the broker's resident memory is
  sampled throughout. A broker that kept reading requests would hold their responses
  (or at least their queue slots) without bound; it must instead stop reading from such
  a connection (Kafka mutes the channel), so its memory stays flat.
- ``connection_churn``: rounds of 1,000 connections opened at once (a third send
  ApiVersions and read the answer, a third send half a frame, a third nothing), then
  dropped (half with RST, half with FIN); descriptors and memory must come back.
- ``connection_limits``: ``max.connections.per.ip`` and ``max.connections``: the
  connection over a limit is closed at once with a log line naming the limit, and a
  slot frees up when a connection closes.
"""

from __future__ import annotations

import datetime
import random
import resource
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.types import TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from tests.robustness.load import Producing, fd_count, rss_kib
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient, request_frame

STALL_TOPIC = "stalled"
STALL_PARTITIONS = 4
PREAD_PARTITION_BYTES = 60 * 1024
"""Below the broker's sendfile threshold (64 KiB): these responses are read into memory."""
SENDFILE_PARTITION_BYTES = 1 << 20
STALL_RSS_BOUND_KIB = 32 * 1024
"""The broker's resident memory may grow by at most this much while consumers stall."""


@dataclass
class StalledRun:
    seconds: float = 0.0
    topic_bytes: int = 0
    connections: int = 0
    requests_sent: int = 0
    """Fetch requests the stalled clients handed to the kernel (none of them read)."""
    response_bytes_requested: int = 0
    """What those requests ask for: the memory a broker that answered them all would fill."""
    records_acked_during: int = 0
    """Records the concurrent producer got acknowledged while the consumers stalled."""
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    fds_before: int = 0
    fds_peak: int = 0
    fds_after: int = 0
    fresh_client: str = ""
    log_errors: list[str] = field(default_factory=list)
    """The broker log's ERROR lines and tracebacks written during the run."""
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds into the stall, VmRSS KiB, descriptors)."""

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_peak_kib - self.rss_before_kib


def fetch_request(partition_bytes: int, partitions: int = STALL_PARTITIONS) -> FetchRequest:
    """Fetch v12 of every partition of the stall topic from offset 0, no waiting."""
    return FetchRequest(
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=0)),
        min_bytes=i32(1),
        max_bytes=i32(64 << 20),
        isolation_level=i8(0),
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            FetchTopic(
                topic=TopicName(STALL_TOPIC),
                partitions=tuple(
                    FetchPartition(
                        partition=i32(p),
                        fetch_offset=i64(0),
                        log_start_offset=i64(-1),
                        partition_max_bytes=i32(partition_bytes),
                    )
                    for p in range(partitions)
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def fill_topic(bootstrap: str, topic: str, partitions: int, total_bytes: int, seed: int) -> None:
    rng = random.Random(seed)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 16384, "acks": 1}
    )
    for n in range(total_bytes // 1024):
        while True:
            try:
                producer.produce(topic, value=rng.randbytes(1024), partition=n % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} records not delivered while filling {topic}")


class _StalledSender(threading.Thread):
    """One connection that sends ``frame`` over and over and never reads."""

    def __init__(self, address: tuple[str, int], frame: bytes, response_size: int) -> None:
        super().__init__(name="stalled-sender", daemon=True)
        self.response_size = response_size
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        self.sock.connect(address)
        self.sock.settimeout(0.1)
        self.frame_size = len(frame)
        self.block = frame * 64
        self.sent_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        view = memoryview(self.block)
        position = 0
        while not self.done.is_set():
            try:
                sent = self.sock.send(view[position:])
            except TimeoutError:
                continue
            except OSError:
                return
            self.sent_bytes += sent
            position = (position + sent) % len(self.block)

    @property
    def requests(self) -> int:
        return self.sent_bytes // self.frame_size

    def reset(self) -> None:
        """Close with RST, as a client that dies would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def stalled_consumers(
    broker: BrokerProcess,
    *,
    seconds: float = 10.0,
    fill_bytes: int = 16 << 20,
    connections_per_kind: int = 2,
    seed: int = 1,
) -> StalledRun:
    """Fill a topic, warm the fetch paths up, start a producer, then for ``seconds`` let
    ``connections_per_kind`` connections pipeline Fetch requests answered from memory
    (60 KiB per partition) and as many answered with sendfile (1 MiB per partition),
    never reading; sample the broker's VmRSS and descriptors every 0.25 s, check that a
    fresh client is answered meanwhile, then reset the stalled connections."""
    assert broker.process is not None
    pid = broker.process.pid
    address = ("127.0.0.1", broker.port)
    run = StalledRun(topic_bytes=fill_bytes, connections=2 * connections_per_kind)
    log_start = len(broker.log_path.read_bytes())
    create_topic(broker.bootstrap, STALL_TOPIC, STALL_PARTITIONS)
    fill_topic(broker.bootstrap, STALL_TOPIC, STALL_PARTITIONS, fill_bytes, seed)
    kinds = [
        (fetch_request(PREAD_PARTITION_BYTES), PREAD_PARTITION_BYTES),
        (fetch_request(SENDFILE_PARTITION_BYTES), SENDFILE_PARTITION_BYTES),
    ]
    with WireClient(broker.bootstrap, timeout=30) as warm:  # the paths, read to the end
        for request, _size in kinds:
            for _ in range(10):
                warm.send_frame(warm.request_bytes(request))
            for _ in range(10):
                warm.read_frame()
    producer = Producing(broker.bootstrap, STALL_TOPIC, STALL_PARTITIONS, seed, rate=2000)
    producer.start()
    senders: list[_StalledSender] = []
    try:
        if not producer.wait_for_acks(500, timeout=30):
            raise RuntimeError(f"the producer got no acknowledgements: {producer.errors[-1:]}")
        run.rss_before_kib, run.fds_before = rss_kib(pid), fd_count(pid)
        acked_before = len(producer.acked)
        for request, size in kinds:
            frame = request_frame(request, client_id="stalled")
            for _ in range(connections_per_kind):
                senders.append(_StalledSender(address, frame, size * STALL_PARTITIONS))
        for sender in senders:
            sender.start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            run.samples.append((elapsed, rss_kib(pid), fd_count(pid)))
            if not run.fresh_client and elapsed >= seconds / 2:
                run.fresh_client = _fresh_client(broker.bootstrap)
            time.sleep(0.25)
        run.samples.append((time.monotonic() - started, rss_kib(pid), fd_count(pid)))
        run.records_acked_during = len(producer.acked) - acked_before
    finally:
        for sender in senders:
            sender.done.set()
        for sender in senders:
            sender.join(5)
            sender.reset()
        producer.stop()
    run.requests_sent = sum(s.requests for s in senders)
    run.response_bytes_requested = sum(s.requests * s.response_size for s in senders)
    run.rss_peak_kib = max(rss for _t, rss, _fds in run.samples)
    run.fds_peak = max(fds for _t, _rss, fds in run.samples)
    run.fds_after = _settle_fds(pid, run.fds_before)
    run.rss_after_kib = rss_kib(pid)
    run.seconds = seconds
    run.log_errors = log_errors(broker, log_start)
    return run


def log_errors(broker: BrokerProcess, start: int = 0) -> list[str]:
    """ERROR and CRITICAL lines and traceback headers in the broker's log after byte
    ``start``."""
    text = broker.log_path.read_bytes()[start:].decode(errors="replace")
    return [
        line
        for line in text.splitlines()
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]


def _fresh_client(bootstrap: str) -> str:
    try:
        with WireClient(bootstrap, timeout=5) as client:
            reply = client.call(
                ApiVersionsRequest(client_software_name="fresh", client_software_version="1")
            )
    except OSError as exc:
        return f"FAILED: {type(exc).__name__}: {exc}"
    return "answered" if int(reply.error_code) == 0 else f"FAILED: error {reply.error_code}"


def _settle_fds(pid: int, target: int, timeout: float = 10.0) -> int:
    """The broker's descriptor count once it is back to ``target`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    count = fd_count(pid)
    while count > target and time.monotonic() < deadline:
        time.sleep(0.05)
        count = fd_count(pid)
    return count


# -- connection churn ------------------------------------------------------------------------


@dataclass
class ChurnRun:
    rounds: int = 0
    connections_per_round: int = 0
    answered: int = 0
    """ApiVersions requests answered (a third of the connections)."""
    unanswered: int = 0
    fds_baseline: int = 0
    rss_baseline_kib: int = 0
    fds_after: list[int] = field(default_factory=list)
    """Broker descriptors after each round's connections were dropped."""
    rss_after_kib: list[int] = field(default_factory=list)
    fds_peak: int = 0
    seconds: float = 0.0


def raise_fd_limit(needed: int) -> bool:
    """Raise this process's soft descriptor limit to ``needed`` if the hard one allows;
    whether it is high enough now. Processes started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return True
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return True


def connection_churn(
    broker: BrokerProcess, *, rounds: int = 5, connections: int = 1000
) -> ChurnRun:
    """One warm-up round, then the baseline (descriptors, VmRSS), then ``rounds`` rounds;
    after each, the broker's descriptors once they settle (up to 10 s) and its VmRSS."""
    assert broker.process is not None
    pid = broker.process.pid
    address = ("127.0.0.1", broker.port)
    run = ChurnRun(connections_per_round=connections)
    started = time.monotonic()
    before = fd_count(pid)
    _churn_round(address, connections, run)
    run.fds_baseline = _settle_fds(pid, before)
    run.rss_baseline_kib = rss_kib(pid)
    run.answered = run.unanswered = 0
    for _ in range(rounds):
        _churn_round(address, connections, run, pid)
        run.rounds += 1
        run.fds_after.append(_settle_fds(pid, run.fds_baseline))
        run.rss_after_kib.append(rss_kib(pid))
    run.seconds = time.monotonic() - started
    return run


def _churn_round(
    address: tuple[str, int], connections: int, run: ChurnRun, pid: int | None = None
) -> None:
    whole = request_frame(
        ApiVersionsRequest(client_software_name="churn", client_software_version="1")
    )
    half = whole[: len(whole) // 2]
    before = fd_count(pid) if pid is not None else 0
    socks: list[socket.socket] = []
    try:
        for n in range(connections):
            sock = socket.create_connection(address, timeout=10)
            socks.append(sock)
            if n % 3 == 0:
                sock.sendall(whole)
            elif n % 3 == 1:
                sock.sendall(half)
        if pid is not None:  # until the broker has accepted them all (or 5 s)
            deadline = time.monotonic() + 5
            while (count := fd_count(pid)) < before + connections and time.monotonic() < deadline:
                time.sleep(0.01)
            run.fds_peak = max(run.fds_peak, count)
        for n, sock in enumerate(socks):
            if n % 3 == 0:
                try:
                    (size,) = struct.unpack(">i", recv_exact(sock, 4))
                    recv_exact(sock, size)
                    run.answered += 1
                except (OSError, ConnectionError):
                    run.unanswered += 1
    finally:
        for n, sock in enumerate(socks):
            if n % 2:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock``; ConnectionError if it closes first."""
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("closed by the broker")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# -- max.connections, max.connections.per.ip -------------------------------------------------

LIMITS_CONFIG = {"max.connections": "5", "max.connections.per.ip": "3"}
"""Three connections from one address, five in all: 127.0.0.1 hits the per-address
limit first, 127.0.0.2 then hits the broker-wide one."""


@dataclass
class LimitRun:
    admitted: int = 0
    refused: int = 0
    """Connections over a limit that the broker closed."""
    slowest_refusal: float = 0.0
    """Longest time from connecting to seeing the refused connection closed, seconds."""
    not_refused: list[str] = field(default_factory=list)
    """Connections over a limit that were answered or left open (must stay empty)."""
    not_admitted: list[str] = field(default_factory=list)
    """Connections within the limits that were not answered (must stay empty)."""
    log_lines: list[str] = field(default_factory=list)
    """The broker's log lines about refusals."""


def connection_limits(broker: BrokerProcess) -> LimitRun:
    """With ``LIMITS_CONFIG``: three connections from 127.0.0.1 are answered, a fourth is
    closed (per address); two from 127.0.0.2 are answered, a third is closed (broker
    wide); once one of 127.0.0.1's closes, 127.0.0.2 connects again, and 127.0.0.3 is
    then closed (broker wide); once all are closed, five new connections are answered
    (the counts were freed)."""
    run = LimitRun()
    open_: list[socket.socket] = []

    def admitted(source: str, label: str) -> socket.socket | None:
        sock = _connect(broker.port, source)
        if _api_versions(sock):
            run.admitted += 1
            open_.append(sock)
            return sock
        run.not_admitted.append(label)
        sock.close()
        return None

    def refused(source: str, label: str) -> None:
        sock = _connect(broker.port, source)
        started = time.monotonic()
        if _api_versions(sock) or not _closed(sock):
            run.not_refused.append(label)
        else:
            run.refused += 1
            run.slowest_refusal = max(run.slowest_refusal, time.monotonic() - started)
        sock.close()

    try:
        first = [admitted("127.0.0.1", f"127.0.0.1 #{n}") for n in range(3)]
        refused("127.0.0.1", "127.0.0.1 #4 (over max.connections.per.ip=3)")
        for n in range(2):
            admitted("127.0.0.2", f"127.0.0.2 #{n}")
        refused("127.0.0.2", "127.0.0.2 #3 (over max.connections=5)")
        if first[0] is not None:
            open_.remove(first[0])
            first[0].close()
            time.sleep(0.2)  # the broker sees the close
            admitted("127.0.0.2", "127.0.0.2 after a 127.0.0.1 connection closed")
            refused("127.0.0.3", "127.0.0.3 #1 (over max.connections=5 again)")
        for sock in open_:
            sock.close()
        open_.clear()
        time.sleep(0.2)
        for n in range(3):
            admitted("127.0.0.1", f"127.0.0.1 after all closed #{n}")
        for n in range(2):
            admitted("127.0.0.2", f"127.0.0.2 after all closed #{n}")
    finally:
        for sock in open_:
            sock.close()
    run.log_lines = [line for line in broker.log().splitlines() if "Rejected connection" in line]
    return run


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _api_versions(sock: socket.socket) -> bool:
    """Whether an ApiVersions request on ``sock`` is answered."""
    client = WireClient.wrap(sock)
    try:
        sock.settimeout(2)
        reply = client.call(
            ApiVersionsRequest(client_software_name="limits", client_software_version="1")
        )
    except (OSError, ConnectionError, struct.error):
        return False
    return int(reply.error_code) == 0


def _closed(sock: socket.socket, timeout: float = 1.0) -> bool:
    """Whether the broker has closed ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
