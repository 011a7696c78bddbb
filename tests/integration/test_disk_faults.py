"""Disk faults against a real broker process (issue #5), on real file systems: a log dir
on a small tmpfs that fills up, and a log dir on ext4 that fails and turns read-only
under the running broker. The campaigns are ``tests.robustness.disk_faults``, which
``python -m tests.fuzz.report`` also runs; where the machine cannot mount, the test is
skipped with a message saying so.

Error codes are read from the wire: a full disk answers produce with
KAFKA_STORAGE_ERROR, damages nothing, and produce works again once space is freed; a
failed log dir goes offline (KAFKA_STORAGE_ERROR for its partitions, no leader in
Metadata) while the broker keeps answering everything else and still shuts down with
exit code 0. The rules are in ``odradek.storage.log_dir_failure``.
"""

from __future__ import annotations

from pathlib import Path

from odradek.protocol.errors import ErrorCode
from tests.robustness.disk_faults import STORAGE_ERROR, full_disk, offline_dir, only_dir_fails


def test_full_disk_fails_produce_damages_nothing_and_recovers_once_space_is_freed(
    tmp_path: Path,
) -> None:
    run = full_disk(tmp_path)
    assert run.failures == []
    assert run.acknowledged_before_full > 50
    assert run.errors_while_full == [STORAGE_ERROR, STORAGE_ERROR]
    assert run.online_while_full
    assert run.damaged == {"while full": 0, "after freeing space": 0, "after a restart": 0}
    assert run.served_after_freeing and run.acknowledged_after_freeing == 101
    assert run.acknowledged_total == run.acknowledged_before_full + 101
    assert (run.exit_code, run.log_errors) == (0, 0)


def test_failed_log_dir_goes_offline_and_the_broker_serves_the_rest(tmp_path: Path) -> None:
    run = offline_dir(tmp_path)
    assert run.failures == []
    assert [code for _, code in run.offline_answers] == [STORAGE_ERROR] * 3
    assert run.metadata == [(0, 1, []), (ErrorCode.leader_not_available, -1, [1])]
    assert run.healthy_acknowledged == 21 and run.healthy_intact
    assert run.new_topic_acknowledged == 10
    assert run.alive and (run.exit_code, run.log_errors) == (0, 0)


def test_the_only_log_dir_failing_leaves_a_broker_that_answers_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """Kafka halts when its last log dir fails; this broker keeps answering (with
    KAFKA_STORAGE_ERROR where a write is needed, cluster metadata included)."""
    run = only_dir_fails(tmp_path)
    assert run.failures == []
    assert dict(run.answers) == {
        "Produce": STORAGE_ERROR,
        "Fetch": STORAGE_ERROR,
        "Metadata (partition)": ErrorCode.leader_not_available,
        "CreateTopics": STORAGE_ERROR,
        "Metadata (refused topic)": ErrorCode.unknown_topic_or_partition,
        "FindCoordinator": ErrorCode.coordinator_not_available,
        "ApiVersions": 0,
    }
    assert (run.exit_code, run.log_errors) == (0, 0)
