"""PendingReply: a parked fetch's answer reaches the connection the moment it is set,
whether the connection started waiting before or after; a connection that closed
first cancels it, which lets the fetch leave the purgatory."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import PendingReply


def test_an_answer_set_later_is_delivered_at_once() -> None:
    reply = PendingReply()
    got: list[tuple[Any, BaseException | None]] = []
    reply.deliver_to(lambda answer, error: got.append((answer, error)))
    assert got == []
    reply.set_result("answer")
    assert got == [("answer", None)]  # synchronously, not on a later loop turn
    reply.set_result("again")  # settles once
    assert got == [("answer", None)]


def test_an_answer_set_before_anyone_waits_is_kept() -> None:
    reply = PendingReply()
    error = RuntimeError("read failed")
    reply.set_exception(error)
    got: list[tuple[Any, BaseException | None]] = []
    reply.deliver_to(lambda answer, failure: got.append((answer, failure)))
    assert got == [(None, error)]


def test_cancel_runs_on_cancel_once_and_drops_a_later_answer() -> None:
    reply = PendingReply()
    cancelled: list[bool] = []
    reply.on_cancel = lambda: cancelled.append(True)
    got: list[Any] = []
    reply.deliver_to(lambda answer, error: got.append(answer))
    reply.cancel()
    reply.cancel()
    reply.set_result("too late")
    assert cancelled == [True]
    assert got == []
