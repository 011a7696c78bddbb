"""Runs the log cleaner (Kafka's ``LogCleaner`` and its ``CleanerThread``s).

``log.cleaner.threads`` workers, each a task on the event loop with a thread of its
own: the worker asks the ``LogCleanerManager`` for the filthiest log (on the loop, where
the logs live), cleans it in its thread (``Cleaner.clean`` only reads and writes files),
then swaps the cleaned segments in and writes the checkpoint back on the loop. With
nothing to clean it sleeps ``log.cleaner.backoff.ms``. Each worker's offset map gets
``log.cleaner.dedupe.buffer.size / log.cleaner.threads`` bytes. ``stop`` asks a cleaning
under way to give up at its next batch (its files are deleted), so a shutdown is not
held up by a big log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from odradek.config import BrokerConfig
from odradek.storage.cleaner.cleaner import Cleaner, CleaningAbortedError, LogToClean
from odradek.storage.errors import KafkaStorageError, LogDirFullError
from odradek.storage.log_manager import LogManager
from odradek.storage.segment import Clock

log = logging.getLogger(__name__)


class LogCleaner:
    def __init__(self, log_manager: LogManager, config: BrokerConfig, clock: Clock) -> None:
        self.log_manager = log_manager
        self._clock = clock
        self._configure(config)
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._retired: ThreadPoolExecutor | None = None
        self.cleanings = 0
        """Cleanings swapped in since start (for logs and tests)."""

    def _configure(self, config: BrokerConfig) -> None:
        self.threads = max(int(config.get("log.cleaner.threads")), 1)
        self.backoff = max(int(config.get("log.cleaner.backoff.ms")), 10) / 1000
        memory = int(config.get("log.cleaner.dedupe.buffer.size")) // self.threads
        load_factor = float(config.get("log.cleaner.io.buffer.load.factor"))
        # Each cleaner gets the whole rate, as Kafka gives each cleaner thread its own.
        io_rate = float(config.get("log.cleaner.io.max.bytes.per.second"))
        self._abort = threading.Event()
        self._cleaners = [
            Cleaner(
                memory,
                load_factor=load_factor,
                clock=self._clock,
                abort=self._abort,
                max_io_bytes_per_second=io_rate,
            )
            for _ in range(self.threads)
        ]
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="log-cleaner")

    async def run(self) -> None:
        """The workers; returns when they are cancelled. A ``reconfigure`` ends the
        current workers and, once their threads are done, starts the new ones."""
        while True:
            self._workers = [asyncio.create_task(self._worker(c)) for c in self._cleaners]
            outcomes = await asyncio.gather(*self._workers, return_exceptions=True)
            retired, self._retired = self._retired, None
            if retired is None:  # not a reconfigure: a worker failed
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                return
            # As Kafka's shutdown-then-startup: no two cleanings of one log overlap.
            await asyncio.to_thread(retired.shutdown, True)

    def reconfigure(self, config: BrokerConfig) -> None:
        """Apply changed cleaner configs as Kafka's ``LogCleaner.reconfigure``: the
        cleanings under way give up (their files are deleted, the logs are cleaned
        again later) and new workers start with the new settings."""
        self._abort.set()
        retired = self._executor
        self._configure(config)
        retired.shutdown(wait=False, cancel_futures=True)
        if self._workers:  # else run() has not started, and starts the new ones
            self._retired = retired
        for task in self._workers:
            task.cancel()
        log.info("log cleaner restarted with %d threads", self.threads)

    def wake(self) -> None:
        """Look for work now rather than after the backoff (a config changed)."""
        self._wake.set()

    def stop(self) -> None:
        self._abort.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _worker(self, cleaner: Cleaner) -> None:
        manager = self.log_manager.cleaner_manager
        loop = asyncio.get_running_loop()
        while True:
            plan = manager.grab_filthiest_log(self._clock())
            if plan is None:
                await self._sleep()
                continue
            try:
                result = await loop.run_in_executor(self._executor, cleaner.clean, plan)
            except (CleaningAbortedError, asyncio.CancelledError):
                manager.abort_cleaning(plan)
                raise
            except Exception as exc:
                self._failed(plan, exc)
                await self._sleep()
                continue
            if manager.done_cleaning(plan, result):
                self.cleanings += 1
                self.log_manager.checkpoint_cleaner_offsets()
                stats = result.stats
                log.info(
                    "cleaned %s up to offset %d: %d of %d records removed, %d bytes -> %d",
                    plan.topic_partition,
                    result.end_offset,
                    stats.records_removed,
                    stats.records_read,
                    stats.bytes_read,
                    stats.bytes_written,
                )

    def _failed(self, plan: LogToClean, error: Exception) -> None:
        """As Kafka's cleaner thread: a full disk is tried again later; another disk
        error takes the log dir offline (the cleaner cannot tell a failing disk from a
        failing cleaning); anything else (a corrupt batch) leaves that log uncleanable
        until restart. A log deleted or moved while it was being cleaned explains any
        error and is just forgotten."""
        manager = self.log_manager.cleaner_manager
        item = manager.abort_cleaning(plan)
        tp = plan.topic_partition
        if item is None:
            return
        if isinstance(error, LogDirFullError):
            log.warning("cleaning %s stopped, the disk is full; trying again later", tp)
        elif isinstance(error, (KafkaStorageError, OSError)):
            self.log_manager.log_dir_failure_channel.maybe_add_offline_log_dir(
                item.parent_dir, f"error while cleaning {tp}", error
            )
        else:
            manager.mark_uncleanable(tp)
            log.error("cleaning %s failed; it is not cleaned until restart: %s", tp, error)

    async def _sleep(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.backoff):
                await self._wake.wait()
