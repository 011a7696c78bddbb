"""Group membership with librdkafka consumers: split, leave, expiry, cooperative, static.

Every consumer uses ``session.timeout.ms=6000`` and ``heartbeat.interval.ms=1000``.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.groups.members import (
    SESSION_TIMEOUT_MS,
    Member,
    generations,
    join,
    live,
    name,
    poll_for,
    poll_until,
    split_evenly,
)
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic

PARTITIONS = 6
SESSION_S = SESSION_TIMEOUT_MS / 1000
MEMBER_PROCESS = "tests.integration.groups.member_process"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def members() -> Iterator[list[Member]]:
    """Members a test starts; closed afterwards whatever happens."""
    started: list[Member] = []
    yield started
    for member in started:
        with contextlib.suppress(Exception):  # a failed test may leave it in a bad state
            member.close()


def owners(members: list[Member]) -> dict[int, str]:
    return {p: m.label for m in live(members) for p in m.assignment()}


def test_three_consumers_split_six_partitions_and_a_leaver_is_covered(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("split"), name("split-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    members += [join(broker.bootstrap, group, topic, f"c{i}") for i in range(3)]

    poll_until(members, split_evenly(members, PARTITIONS), timeout=20, what="a 2/2/2 split")
    assert sorted(len(m.assignment()) for m in members) == [2, 2, 2]
    assert len(owners(members)) == PARTITIONS

    leaver = members[2]
    moved = leaver.assignment()
    leaver.close()  # sends LeaveGroup: the others rebalance at once, not after a session
    took = poll_until(
        members, split_evenly(members, PARTITIONS), timeout=SESSION_S, what="two take over all 6"
    )
    assert sorted(len(m.assignment()) for m in live(members)) == [3, 3]
    assert moved <= frozenset(owners(members))
    assert took < SESSION_S, f"took over after {took:.1f}s, not before the session timeout"


def test_killed_member_is_expelled_after_the_session_timeout(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("killed"), name("killed-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    victim = subprocess.Popen(
        [sys.executable, "-m", MEMBER_PROCESS, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        members += [join(broker.bootstrap, group, topic, f"c{i}") for i in range(2)]
        victim_lines: list[str] = []
        pending = b""

        def victim_has_two() -> bool:
            nonlocal pending
            assert victim.stdout is not None
            fd = victim.stdout.fileno()
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                *complete, pending = (pending + chunk).split(b"\n")
                victim_lines.extend(line.decode() for line in complete)
            assigned = [line for line in victim_lines if line.startswith("assigned ")]
            others = sum(len(m.assignment()) for m in members)
            return bool(assigned) and len(assigned[-1].split()[1].split(",")) == 2 and others == 4

        poll_until(members, victim_has_two, timeout=20, what="the subprocess owning 2 of 6")
        (victim_id,) = {line.split()[1] for line in victim_lines if line.startswith("member ")}
        before = generations(broker, group)[-1]

        victim.kill()  # SIGKILL: no LeaveGroup, the connection just drops
        victim.wait(10)
        killed_at = time.monotonic()
        poll_until(
            members,
            split_evenly(members, PARTITIONS),
            timeout=SESSION_S + 10,
            what="the survivors take over the victim's partitions",
        )
        took = time.monotonic() - killed_at
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        if victim.stdout is not None:
            victim.stdout.close()

    # Expelled by the session timer (its last heartbeat was at most one interval before
    # the kill), not by the closed connection, and not much later.
    assert SESSION_S - 1.5 <= took <= SESSION_S + 6, f"partitions moved after {took:.1f}s"
    assert f"member {victim_id} session expired" in broker.log_path.read_text()
    assert generations(broker, group)[-1] == before + 1


def test_cooperative_sticky_revokes_only_the_partitions_that_move(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("coop"), name("coop-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    first = [join(broker.bootstrap, group, topic, f"c{i}", cooperative=True) for i in range(2)]
    members += first
    poll_until(members, split_evenly(members, PARTITIONS), timeout=20, what="a 3/3 split")
    before = {m.label: m.assignment() for m in first}
    marks = {m.label: len(m.events) for m in first}

    # A third member joins: each of the two gives up exactly one partition, keeps two.
    third = join(broker.bootstrap, group, topic, "c2", cooperative=True)
    members.append(third)
    poll_until(members, split_evenly(members, PARTITIONS), timeout=20, what="a 2/2/2 split")
    poll_for(members, 1.5)  # a further (wrong) round would show up here
    after = {m.label: m.assignment() for m in members}
    assert sorted(len(a) for a in after.values()) == [2, 2, 2]
    for member in first:
        events = member.since(marks[member.label])
        revoked = frozenset().union(*(e.partitions for e in events if e.kind == "revoke"))
        assigned = frozenset().union(*(e.partitions for e in events if e.kind == "assign"))
        assert revoked == before[member.label] - after[member.label], events
        assert not revoked & after[member.label], "a kept partition was revoked"
        assert not assigned, f"{member.label} was given partitions: {events}"
        assert not [e for e in events if e.kind == "lost"]
    moved = frozenset().union(*(before[m.label] - after[m.label] for m in first))
    assert after["c2"] == moved
    # Incremental: the newcomer is given the moved partitions once the others let them go
    # (an empty first round, then the second), and never anything twice.
    given = [e.partitions for e in third.events if e.kind == "assign"]
    assert [e.kind for e in third.events] == ["assign"] * len(given)
    assert sum(len(g) for g in given) == len(moved) and frozenset().union(*given) == moved

    # The third member leaves: its two partitions are added, nothing is revoked.
    marks = {m.label: len(m.events) for m in first}
    third.close()
    poll_until(members, split_evenly(members, PARTITIONS), timeout=SESSION_S, what="3/3 again")
    for member in first:
        events = member.since(marks[member.label])
        assert [e.kind for e in events] == ["assign"], events
        assert events[0].partitions <= moved
        assert member.assignment() == after[member.label] | events[0].partitions


def test_static_members_rejoin_without_a_rebalance(
    broker: BrokerProcess, members: list[Member]
) -> None:
    topic, group = name("static"), name("static-g")
    create_topic(broker.bootstrap, topic, PARTITIONS)

    def static(i: int) -> Member:
        return join(broker.bootstrap, group, topic, f"c{i}", **{"group.instance.id": f"i{i}"})

    members += [static(i) for i in range(3)]
    poll_until(members, split_evenly(members, PARTITIONS), timeout=20, what="a 2/2/2 split")
    generation = generations(broker, group)[-1]

    # Restart every member in turn (the leader among them), each well within the session.
    for i in range(3):
        old = members[i]
        kept = old.assignment()
        marks = {m.label: len(m.events) for m in members if m is not old}
        old.close()  # a static member does not send LeaveGroup
        members[i] = static(i)
        poll_until(
            members,
            lambda i=i, kept=kept: members[i].assignment() == kept,
            timeout=SESSION_S - 1,
            what=f"c{i} back with {sorted(kept)}",
        )
        poll_for(members, 1.5)  # heartbeats would report a rebalance here
        for member in members:
            if member is not members[i]:
                assert member.since(marks[member.label]) == [], f"{member.label} rebalanced"
        assert split_evenly(members, PARTITIONS)()
    assert generations(broker, group)[-1] == generation
    assert "static member i0 rejoined" not in broker.log_path.read_text()
