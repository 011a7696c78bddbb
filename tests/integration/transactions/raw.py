"""A transactional producer spoken by hand over the wire, one request at a time, so a
test can do what a real client never would (write to a partition it did not add)."""

from __future__ import annotations

import time
from typing import Any

from kio.schema.add_partitions_to_txn.v3.request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
)
from kio.schema.end_txn.v3.request import EndTxnRequest
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
from kio.static.primitive import i8, i16, i32

from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from tests.support.wire import WireClient, init_producer_id_request, produce_request

RETRIABLE = {
    ErrorCode.coordinator_not_available,
    ErrorCode.not_coordinator,
    ErrorCode.coordinator_load_in_progress,
    ErrorCode.concurrent_transactions,
}


def call(client: WireClient, request: Any, error_of: Any = lambda r: r.error_code) -> Any:
    """The response, asked again while the coordinator is still being set up."""
    deadline = time.monotonic() + 30
    while True:
        response = client.call(request)
        if ErrorCode(error_of(response)) not in RETRIABLE or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def coordinator(client: WireClient, txn_id: str) -> str:
    """host:port of the transactional id's coordinator."""
    found = call(client, FindCoordinatorRequest(key=txn_id, key_type=i8(1)))
    assert ErrorCode(found.error_code) is ErrorCode.none, found
    return f"{found.host}:{found.port}"


class RawTxnProducer:
    """InitProducerId, AddPartitionsToTxn, Produce and EndTxn for one transactional id;
    ``coordinator_client`` must be connected to its coordinator."""

    def __init__(self, coordinator_client: WireClient, txn_id: str) -> None:
        self.client = coordinator_client
        self.txn_id = txn_id
        init = call(coordinator_client, init_producer_id_request(txn_id))
        assert ErrorCode(init.error_code) is ErrorCode.none, init
        self.producer_id = int(init.producer_id)
        self.epoch = int(init.producer_epoch)
        self.sequences: dict[tuple[str, int], int] = {}

    def add(self, topic: str, *partitions: int) -> list[ErrorCode]:
        response = call(
            self.client,
            AddPartitionsToTxnRequest(
                v3_and_below_transactional_id=self.txn_id,
                v3_and_below_producer_id=self.producer_id,
                v3_and_below_producer_epoch=i16(self.epoch),
                v3_and_below_topics=(
                    AddPartitionsToTxnTopic(name=topic, partitions=tuple(map(i32, partitions))),
                ),
            ),
            lambda r: (
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
            ),
        )
        return [
            ErrorCode(p.partition_error_code)
            for t in response.results_by_topic_v3_and_below
            for p in t.results_by_partition
        ]

    def produce(
        self, leader: WireClient, topic: str, partition: int, value: bytes, version: int = 9
    ) -> Any:
        """One transactional batch; the partition's response (error_code, error_message).
        The sequence moves on only when the batch was taken."""
        sequence = self.sequences.get((topic, partition), 0)
        batch = build_batch(
            [NewRecord(key=None, value=value)],
            BatchSpec(
                producer_id=self.producer_id,
                producer_epoch=self.epoch,
                base_sequence=sequence,
                transactional=True,
            ),
        )
        response = leader.call(
            produce_request(topic, partition, batch, transactional_id=self.txn_id, version=version)
        )
        result = response.responses[0].partition_responses[0]
        if ErrorCode(result.error_code) is ErrorCode.none:
            self.sequences[(topic, partition)] = sequence + 1
        return result

    def end(self, *, commit: bool) -> ErrorCode:
        request = EndTxnRequest(
            transactional_id=self.txn_id,
            producer_id=self.producer_id,
            producer_epoch=i16(self.epoch),
            committed=commit,
        )
        return ErrorCode(call(self.client, request).error_code)
