"""An acks=all produce waiting for the ISR (Kafka's ``DelayedProduce``).

The records are in the leader's log; the answer waits until the high watermark passes
each partition's last offset (every ISR member has them), or the request's timeout, when
the partitions still short get REQUEST_TIMED_OUT. A partition that loses leadership
meanwhile answers NOT_LEADER_OR_FOLLOWER; one whose ISR fell below
``min.insync.replicas`` answers NOT_ENOUGH_REPLICAS_AFTER_APPEND (the records are
written, but not as safely as asked). One timer and one future, no task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

if TYPE_CHECKING:
    from odradek.replication.partition import AcksOutcome
    from odradek.replication.replica_manager import ProduceResult


class DelayedProduce:
    __slots__ = ("_forget", "_outcome", "_timer", "future", "pending", "results")

    def __init__(
        self,
        results: dict[TopicPartition, ProduceResult],
        pending: dict[TopicPartition, int],
        timeout_ms: int,
        outcome: Callable[[TopicPartition, int], AcksOutcome],
        forget: Callable[[DelayedProduce], None],
    ) -> None:
        self.results = results
        self.pending = pending
        """Partition -> offset the high watermark must reach."""
        self._outcome = outcome
        self._forget = forget
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[dict[TopicPartition, ProduceResult]] = loop.create_future()
        self._timer: asyncio.TimerHandle | None = loop.call_later(
            max(timeout_ms, 0) / 1000, self._expire
        )

    def check(self, tp: TopicPartition) -> None:
        """Re-examine one partition (its high watermark, ISR or leadership changed)."""
        required = self.pending.get(tp)
        if required is None:
            return
        outcome = self._outcome(tp, required)
        if not outcome.done:
            return
        del self.pending[tp]
        if outcome.error is not ErrorCode.none:
            self.results[tp] = self.results[tp]._replace(error=outcome.error)
        if not self.pending:
            self._complete()

    def _expire(self) -> None:
        self._timer = None
        for tp in list(self.pending):
            self.results[tp] = self.results[tp]._replace(
                error=ErrorCode.request_timed_out,
                message="the in-sync replicas did not all acknowledge in time",
            )
        self.pending.clear()
        self._complete()

    def _complete(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._forget(self)
        if not self.future.done():
            self.future.set_result(self.results)

    def cancel(self) -> None:
        """The broker stops (or the client went away): answer now. Partitions still
        waiting get NOT_LEADER_OR_FOLLOWER, so a producer retries where the partition
        is led next (an idempotent producer's retry is deduplicated there)."""
        if self.future.done():
            return
        for tp in list(self.pending):
            self.results[tp] = self.results[tp]._replace(error=ErrorCode.not_leader_or_follower)
        self.pending.clear()
        self._complete()
