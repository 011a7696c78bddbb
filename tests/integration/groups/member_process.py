"""A group member in its own process, for tests that SIGKILL it (no LeaveGroup is sent).

Usage: python -m tests.integration.groups.member_process BOOTSTRAP GROUP TOPIC [KEY=VALUE...]

Prints ``member <member id>`` once joined and ``assigned <p,p,...>`` after each rebalance,
one line each, flushed; then polls until killed.
"""

from __future__ import annotations

import sys
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from tests.integration.groups.members import fast_config


def main(bootstrap: str, group: str, topic: str, *pairs: str) -> None:
    extra: dict[str, Any] = dict(pair.split("=", 1) for pair in pairs)
    consumer = Consumer(fast_config(bootstrap, group, **extra))

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        c.assign(partitions)
        print(f"member {c.memberid()}", flush=True)
        print("assigned " + ",".join(str(tp.partition) for tp in partitions), flush=True)

    consumer.subscribe([topic], on_assign=on_assign)
    while True:
        consumer.poll(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])
