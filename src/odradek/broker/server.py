"""The broker process: wires storage, metadata, replica manager and handlers to listeners.

Start-up: read meta.properties (cluster id, node id), load the logs, open the metadata
store, create the partitions this node hosts, then bind the listeners and log one line
"listening on ...". Shutdown: stop accepting, let in-flight requests finish (waiting
fetches are completed early), flush logs and write checkpoints.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import inspect
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from odradek.broker.api import Handler
from odradek.broker.connection import KafkaConnection
from odradek.broker.connections import ConnectionRegistry
from odradek.broker.dynamic_config import DynamicBrokerConfigs
from odradek.broker.handlers import all_handlers
from odradek.broker.handlers.api_versions import versions_response
from odradek.broker.log_cleaner import LogCleaner
from odradek.broker.quotas import ClientQuotas
from odradek.broker.txn_markers import write_local_txn_markers
from odradek.cluster.brokers import BrokerRegistration, Endpoint, parse_listener
from odradek.cluster.controller import Controller
from odradek.cluster.leader_rebalance import LeaderRebalancer
from odradek.cluster.leadership import LeadershipController
from odradek.cluster.metadata import LocalStore, MetadataStore
from odradek.cluster.reassignment import ReassignmentController
from odradek.cluster.zookeeper.store import ZooKeeperStore
from odradek.config import (
    CONNECTION_DYNAMIC_CONFIGS,
    LOG_CLEANER_DYNAMIC_CONFIGS,
    BrokerConfig,
    ConfigError,
    LogConfig,
    validate_topic_configs,
)
from odradek.coordinator.group.service import GroupCoordinator
from odradek.coordinator.transaction.service import TransactionCoordinator
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.replication.producer_ids import ProducerIdManager
from odradek.replication.replica_manager import ReplicaManager
from odradek.replication.txn_verification import TxnVerifier
from odradek.storage import checkpoints
from odradek.storage.checkpoint_job import CheckpointJob
from odradek.storage.errors import KafkaStorageError
from odradek.storage.log import FlushJob
from odradek.storage.log_manager import LogManager

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
CONTROLLED_SHUTDOWN_SECONDS = 5.0
LOCK_FILE = ".lock"


class BrokerStartError(Exception):
    """The broker cannot start; the message says why and what to do."""


def lock_log_dirs(directories: list[Path]) -> list[int]:
    """Take Kafka's exclusive ``.lock`` in every log dir, so two brokers never share one.
    A dir that cannot be used at all (not a directory, a failed disk) is skipped: the
    log manager takes it offline and the broker starts on the others, as Kafka."""
    held: list[int] = []
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.error("cannot lock log dir %s, it will be offline: %s", directory, exc)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            for other in held:
                os.close(other)
            raise BrokerStartError(
                f"log dir {directory} is in use by another broker process "
                "(stop it, or give this one another --data-dir)"
            ) from None
        held.append(fd)
    return held


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.broker_id = config.broker_id
        self.listeners = [parse_listener(item) for item in config.listeners]
        advertised = config.get("advertised.listeners")
        self._advertised_config = [parse_listener(item) for item in advertised or []]
        self.advertised: list[Endpoint] = []
        self.handlers: dict[int, Handler] = {h.api_key: h for h in all_handlers()}
        self.connections = ConnectionRegistry(
            max_connections=config.get("max.connections"),
            max_per_ip=config.get("max.connections.per.ip"),
            max_idle_ms=config.get("connections.max.idle.ms"),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.Server] = []
        self._stopping = False
        log_dirs = config.log_dirs
        self._locks = lock_log_dirs(log_dirs)
        self.cluster_id, self._cluster_id_stored = self._cluster_identity(log_dirs)
        self.metadata: MetadataStore
        self.zookeeper: ZooKeeperStore | None = None
        connect = config.get("zookeeper.connect")
        if connect:
            self.zookeeper = ZooKeeperStore(
                connect,
                self.cluster_id,
                self.broker_id,
                session_timeout_ms=config.get("zookeeper.session.timeout.ms"),
                connection_timeout_ms=config.get("zookeeper.connection.timeout.ms"),
            )
            self.metadata = self.zookeeper
        else:
            try:
                os.listdir(log_dirs[0])
            except OSError as exc:
                raise BrokerStartError(
                    f"the first log dir {log_dirs[0]} holds this node's cluster metadata and "
                    f"cannot be used: {exc}"
                ) from exc
            self.metadata = LocalStore(log_dirs[0], self.cluster_id)
        self.controller = Controller(self.metadata, config)
        self.quotas = ClientQuotas(
            self.metadata,
            config.get("quota.window.num"),
            config.get("quota.window.size.seconds"),
            controller_samples=config.get("controller.quota.window.num"),
            controller_window_seconds=config.get("controller.quota.window.size.seconds"),
        )
        self.metadata.add_listener(self.quotas)
        self.leadership = LeadershipController(self.metadata, config)
        self.log_manager = LogManager.from_config(
            config, clock=self.clock, flush_scheduler=self._flush_in_background
        )
        self._check_live_log_dirs()
        self.replica_manager = ReplicaManager(
            broker_id=self.broker_id,
            config=config,
            log_manager=self.log_manager,
            metadata=self.metadata,
            clock=self.clock,
        )
        self.metadata.add_listener(self.replica_manager)
        self.metadata.add_listener(self.leadership)
        self.registration: BrokerRegistration | None = None
        """As registered, with the offline replicas last reported; None until then."""
        self._offline_report_pending = False
        self.replica_manager.add_offline_listener(self._offline_replicas_changed)
        self.producer_ids = ProducerIdManager(self.metadata)
        self.reassignments = ReassignmentController(self.metadata)
        self.metadata.add_listener(self.reassignments)
        self.leader_rebalancer = LeaderRebalancer(self.metadata, config)
        self.log_cleaner = (
            LogCleaner(self.log_manager, config, self.clock)
            if config.get("log.cleaner.enable")
            else None
        )
        self.metadata.add_listener(self.leader_rebalancer)
        self.dynamic_configs = DynamicBrokerConfigs(
            config, self.metadata, self.replica_manager, self._broker_configs_changed
        )
        self.metadata.add_listener(self.dynamic_configs)
        self.group_coordinator = GroupCoordinator(
            config,
            metadata=self.metadata,
            controller=self.controller,
            replica_manager=self.replica_manager,
            clock=self.clock,
            live_brokers=self.controller.live_brokers,
        )
        self.transaction_coordinator = TransactionCoordinator(
            config,
            metadata=self.metadata,
            controller=self.controller,
            replica_manager=self.replica_manager,
            clock=self.clock,
            live_brokers=self.controller.live_brokers,
            producer_ids=self.metadata.allocate_producer_id,
            offsets_partition_of=self.group_coordinator.partition_of,
            local_markers=lambda markers: write_local_txn_markers(self, markers),
        )
        self.txn_verifier = TxnVerifier(
            broker_id=self.broker_id,
            replica_manager=self.replica_manager,
            metadata=self.metadata,
            enabled=config.get("transaction.partition.verification.enable"),
            coordinator_of=self.transaction_coordinator.current_coordinator,
            local=self.transaction_coordinator.verify_partitions_in_txn,
            request_timeout_ms=config.get("request.timeout.ms"),
        )

    def _cluster_identity(self, log_dirs: list[Path]) -> tuple[str, bool]:
        """The cluster id from meta.properties (new if none; the flag says whether it was
        stored), checking the node id too.

        As Kafka, a log dir that belonged to another node or cluster is refused rather
        than silently mixed into this one.
        """
        configured = self.config.get("cluster.id")
        found: dict[str, Path] = {}
        for directory in log_dirs:
            try:
                props = checkpoints.read_meta_properties(str(directory))
            except OSError:  # an unusable dir: offline, see lock_log_dirs
                continue
            if not props:
                continue
            stored_node = props.get("node.id", props.get("broker.id"))
            if stored_node is not None and stored_node != str(self.broker_id):
                raise BrokerStartError(
                    f"{directory}/meta.properties says node.id={stored_node} but this broker "
                    f"is {self.broker_id} (use --broker-id {stored_node} or another --data-dir)"
                )
            if "cluster.id" in props:
                found[props["cluster.id"]] = directory
        if len(found) > 1 or (configured and found and configured not in found):
            ids = ", ".join(f"{cid} in {path}" for cid, path in found.items())
            raise BrokerStartError(f"log dirs belong to different clusters: {ids}")
        if found:
            return next(iter(found)), True
        if configured:
            return str(configured), False
        return _new_cluster_id(), False

    def _check_live_log_dirs(self) -> None:
        """As Kafka, a broker none of whose log dirs can be used at start-up does not
        start (one that loses them all later keeps answering, see log_dir_failure)."""
        if not self.log_manager.live_log_dirs:
            raise BrokerStartError(
                f"none of the log dirs {', '.join(self.log_manager.log_dirs)} can be used "
                "(see the errors above; choose a writable --data-dir)"
            )

    @staticmethod
    def clock() -> int:
        """Wall-clock milliseconds since the epoch (Kafka's time.milliseconds())."""
        return time.time_ns() // 1_000_000

    def log_config(self, topic: str) -> LogConfig:
        metadata = self.metadata.topic(topic)
        overrides = metadata.configs if metadata is not None else {}
        return LogConfig.build(self.config, _parsed(overrides))

    def _broker_configs_changed(self, names: set[str]) -> None:
        """Dynamic configs changed: connection limits apply to the next connections; the
        log cleaner restarts for its own configs (Kafka's LogCleaner.reconfigure), else
        looks at the logs' new configs now."""
        if names & CONNECTION_DYNAMIC_CONFIGS:
            self.connections.set_limits(
                self.config.get("max.connections"), self.config.get("max.connections.per.ip")
            )
        if self.log_cleaner is None:
            return
        if names & LOG_CLEANER_DYNAMIC_CONFIGS:
            self.log_cleaner.reconfigure(self.config)
        else:
            self.log_cleaner.wake()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        started = time.monotonic()
        if self.zookeeper is not None:
            await self.zookeeper.connect()
            if self.zookeeper.cluster_id != self.cluster_id and self._cluster_id_stored:
                raise BrokerStartError(
                    f"the log dirs belong to cluster {self.cluster_id} but ZooKeeper at "
                    f"{self.config.get('zookeeper.connect')} holds cluster "
                    f"{self.zookeeper.cluster_id} (wrong --zookeeper chroot, or wrong "
                    "--data-dir?)"
                )
            self.cluster_id = self.zookeeper.cluster_id
        self.quotas.reload()
        # Dynamic configs stored earlier: before the logs load, the cleaner starts and
        # the listeners accept (the cleaner and the connection registry were built
        # from the static configs).
        self._broker_configs_changed(self.dynamic_configs.reload())
        self.log_manager.write_meta_properties(node_id=self.broker_id, cluster_id=self.cluster_id)
        self.log_manager.load_logs(self.log_config)
        self._check_live_log_dirs()
        self.replica_manager.startup()
        loop = asyncio.get_running_loop()
        for endpoint in self.listeners:
            server = await loop.create_server(
                lambda name=endpoint.name: KafkaConnection(self, name),
                host=endpoint.host or None,
                port=endpoint.port,
                reuse_address=True,
                backlog=1024,
            )
            self._servers.append(server)
            bound_port = server.sockets[0].getsockname()[1]
            self.advertised.append(self._advertise(endpoint, bound_port))
        registration = BrokerRegistration(
            broker_id=self.broker_id,
            endpoints=tuple(self.advertised),
            rack=self.config.get("broker.rack"),
            offline_replicas=self.replica_manager.offline_replicas,
        )
        if self.zookeeper is not None:
            await self.zookeeper.wait_until_registered(registration)
        else:
            self.metadata.register_broker(registration)
        self.registration = registration
        self._report_offline_replicas()  # a dir may have failed while registering
        self._schedule_jobs()
        self.transaction_coordinator.start()
        log.info(
            "broker %d (cluster %s) listening on %s, advertised as %s, %d partitions, "
            "started in %.2fs",
            self.broker_id,
            self.cluster_id,
            ", ".join(
                str(self._bound(e, s)) for e, s in zip(self.listeners, self._servers, strict=True)
            ),
            ", ".join(str(e) for e in self.advertised),
            len(self.replica_manager.partitions),
            time.monotonic() - started,
        )

    def _offline_replicas_changed(self) -> None:
        """Report on the next loop turn, once for all that changed in this one (a failed
        dir or a deleted topic takes many partitions at once)."""
        if not self._offline_report_pending:
            self._offline_report_pending = True
            asyncio.get_running_loop().call_soon(self._report_offline_replicas)

    def _report_offline_replicas(self) -> None:
        """Tell the controller which replicas here cannot serve, through this broker's
        registration (see ``BrokerRegistration``): it moves their leadership and ISR
        membership to the other replicas."""
        self._offline_report_pending = False
        if self.registration is None:
            return  # registering will carry them
        offline = self.replica_manager.offline_replicas
        if offline == self.registration.offline_replicas:
            return
        log.info("reporting %d offline replicas to the controller", len(offline))
        self.registration = replace(self.registration, offline_replicas=offline)
        self.metadata.update_registration(self.registration)

    def _advertise(self, endpoint: Endpoint, bound_port: int) -> Endpoint:
        for configured in self._advertised_config:
            if configured.name == endpoint.name:
                port = configured.port or bound_port
                return Endpoint(configured.name, configured.host or _default_host(), port)
        host = endpoint.host if endpoint.host not in ("", "0.0.0.0", "::") else _default_host()
        return Endpoint(endpoint.name, host, bound_port)

    @staticmethod
    def _bound(endpoint: Endpoint, server: asyncio.Server) -> Endpoint:
        return Endpoint(endpoint.name, endpoint.host, server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("shutting down")
        if self.zookeeper is not None and self.config.get("controlled.shutdown.enable"):
            await self._controlled_shutdown(self.zookeeper)
        for server in self._servers:
            server.close()
        # Take no new requests; answer the ones in flight, waiting ones at once.
        for connection in list(self.connections):
            connection.drain()
        self.replica_manager.complete_waiting()
        self.group_coordinator.shutdown()
        await self.transaction_coordinator.shutdown()
        await self.txn_verifier.close()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        self.leader_rebalancer.close()
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.close()
        await self.replica_manager.fetchers.shutdown()
        await self.replica_manager.log_dir_mover.shutdown()
        if self.log_cleaner is not None:
            self.log_cleaner.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        if self.zookeeper is not None:
            self.zookeeper.close()
        self.log_manager.shutdown()
        for fd in self._locks:
            os.close(fd)
        log.info("shut down cleanly")

    async def _controlled_shutdown(self, store: ZooKeeperStore) -> None:
        """Move leadership away before stopping (Kafka's controlled shutdown).

        The broker leaves the live set first (its registration is deleted), so the
        controller elects new leaders from the rest of each ISR and takes this broker out
        of the ISRs, while this broker goes on serving: followers keep fetching, clients
        are told NOT_LEADER_OR_FOLLOWER and move. It waits until no partition with another
        live ISR member is led here, at most CONTROLLED_SHUTDOWN_SECONDS.
        """
        try:
            store.deregister_broker()
        except KafkaError as exc:
            log.warning("controlled shutdown skipped: %s", exc)
            return
        deadline = time.monotonic() + CONTROLLED_SHUTDOWN_SECONDS
        while time.monotonic() < deadline:
            led = self._leaderships_to_move(store)
            if not led:
                log.info("controlled shutdown: leadership moved away")
                return
            await asyncio.sleep(0.05)
        log.warning(
            "controlled shutdown: %d partitions still led here after %.0fs; stopping anyway",
            len(self._leaderships_to_move(store)),
            CONTROLLED_SHUTDOWN_SECONDS,
        )

    def _leaderships_to_move(self, store: ZooKeeperStore) -> list[tuple[str, int]]:
        live = store.brokers()
        return [
            (topic.name, index)
            for topic in store.topics().values()
            for index, state in enumerate(topic.partitions)
            if state.leader == self.broker_id
            and any(r != self.broker_id and r in live for r in state.isr)
        ]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the broker (cancelled at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # -- periodic jobs ---------------------------------------------------------------------

    def _schedule_jobs(self) -> None:
        config = self.config
        if self.log_cleaner is not None:
            self.spawn(self.log_cleaner.run())
        sweep_ms = self.connections.sweep_interval_ms
        if sweep_ms is not None:
            expire = self.connections.expire_idle
            self.spawn(self._every(sweep_ms, lambda _now: expire(time.monotonic()), "idle sweep"))
        self.spawn(
            self._every(
                config.get("log.retention.check.interval.ms"),
                self.log_manager.cleanup_logs,
                "retention",
            )
        )
        self.spawn(
            self._every(
                min(config.get("log.flush.scheduler.interval.ms"), 3_600_000),
                self.log_manager.flush_dirty_logs,
                "flush",
            )
        )
        logs = self.log_manager
        for interval, checkpoint, name in (
            (
                "log.flush.offset.checkpoint.interval.ms",
                logs.recovery_point_checkpoint,
                "recovery point checkpoint",
            ),
            (
                "log.flush.start.offset.checkpoint.interval.ms",
                logs.log_start_offset_checkpoint,
                "log start offset checkpoint",
            ),
            (
                "replica.high.watermark.checkpoint.interval.ms",
                logs.high_watermark_checkpoint,
                "high watermark checkpoint",
            ),
        ):
            self.spawn(self._every(config.get(interval), self._in_thread(checkpoint), name))
        self.spawn(
            self._every(
                max(config.get("replica.lag.time.max.ms") // 2, 1),
                self.replica_manager.maybe_shrink_isr,
                "ISR shrink",
            )
        )
        self.spawn(
            self._every(
                config.get("offsets.retention.check.interval.ms"),
                self.group_coordinator.cleanup_expired_offsets,
                "offset expiration",
            )
        )

    def _flush_in_background(self, job: FlushJob) -> None:
        """A rolled segment's fsyncs, off the event loop (a segment's worth of dirty data
        can take a second to reach the disk); the recovery point moves when they are done.
        Cancelled at shutdown, which flushes every log anyway."""

        async def flush() -> None:
            await asyncio.to_thread(job.run)
            try:
                job.complete()
            except KafkaStorageError as exc:  # reported to the failure channel already
                log.warning("background flush failed: %s", exc)

        self.spawn(flush())

    async def _every(self, interval_ms: int, job: Any, name: str) -> None:
        """``job(now)`` every interval; a job that returns an awaitable is awaited before
        the next interval starts, so a slow one never runs twice at once."""
        interval = max(interval_ms, 10) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                outcome = job(self.clock())
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("periodic job %s failed", name)

    @staticmethod
    def _in_thread(snapshot: Callable[[], CheckpointJob]) -> Callable[[int], Awaitable[bool]]:
        """A periodic checkpoint: its offsets read here on the loop, its files written in
        a worker thread (``storage.checkpoint_job`` says why). Cancelled at shutdown,
        whose own checkpoints a write still under way can neither meet nor outlast."""

        async def write(_now: int) -> bool:
            job = snapshot()
            await asyncio.to_thread(job.run)
            return job.complete()

        return write

    # -- helpers for handlers --------------------------------------------------------------

    def api_versions_fallback(self) -> Any:
        """ApiVersions v0 response with UNSUPPORTED_VERSION, for a version we do not know."""
        return versions_response(self, 0, ErrorCode.unsupported_version)

    @property
    def endpoint(self) -> Endpoint:
        """This broker's advertised endpoint for clients."""
        return self.advertised[0]

    def live_brokers(self, listener: str) -> list[tuple[int, Endpoint, str | None]]:
        """(id, endpoint on ``listener``, rack) of every live broker, as Metadata lists
        them: a client is given the endpoints of the listener it connected to."""
        found = []
        for broker_id, registration in sorted(self.metadata.brokers().items()):
            endpoint = next(
                (e for e in registration.endpoints if e.name == listener), registration.endpoint
            )
            found.append((broker_id, endpoint, registration.rack))
        return found

    def broker_endpoint(self, broker_id: int, listener: str) -> Endpoint | None:
        """A live broker's endpoint on ``listener``; None if it is not registered."""
        for found_id, endpoint, _rack in self.live_brokers(listener):
            if found_id == broker_id:
                return endpoint
        return None


def _new_cluster_id() -> str:
    """A random cluster id in Kafka's form: URL-safe base64 of a UUID, no padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _default_host() -> str:
    return socket.getfqdn()


def _parsed(overrides: Any) -> dict[str, Any]:
    try:
        return validate_topic_configs(overrides)
    except ConfigError as exc:
        log.warning("ignoring invalid stored topic config: %s", exc)
        return {}
