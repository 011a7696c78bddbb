"""Transactional requests out of order get Kafka's error codes, and the coordinator
keeps serving the transactional id afterwards."""

from __future__ import annotations

import datetime
import time
from typing import Any

from kio.schema.add_partitions_to_txn.v3.request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
)
from kio.schema.end_txn.v1.request import EndTxnRequest as EndTxnV1
from kio.schema.end_txn.v3.request import EndTxnRequest as EndTxnV3
from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.static.primitive import i8, i16, i32, i32Timedelta

from odradek.protocol.errors import ErrorCode
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient

RETRIABLE = {
    ErrorCode.coordinator_not_available,
    ErrorCode.not_coordinator,
    ErrorCode.coordinator_load_in_progress,
    ErrorCode.concurrent_transactions,
}


def _call(client: WireClient, request: Any, error_of: Any = lambda r: r.error_code) -> Any:
    """The response, asked again while the coordinator is still being set up."""
    deadline = time.monotonic() + 20
    while True:
        response = client.call(request)
        if ErrorCode(error_of(response)) not in RETRIABLE or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _init(client: WireClient, txn_id: str, timeout_ms: int = 60_000) -> Any:
    _call(client, FindCoordinatorRequest(key=txn_id, key_type=i8(1)))
    return _call(
        client,
        InitProducerIdRequest(
            transactional_id=txn_id,
            transaction_timeout=i32Timedelta.parse(datetime.timedelta(milliseconds=timeout_ms)),
            producer_id=-1,
            producer_epoch=i16(-1),
        ),
    )


def _end(
    client: WireClient,
    txn_id: str,
    producer_id: int,
    epoch: int,
    commit: bool,
    *,
    old: bool = False,
) -> ErrorCode:
    request_class = EndTxnV1 if old else EndTxnV3
    request = request_class(
        transactional_id=txn_id,
        producer_id=producer_id,
        producer_epoch=i16(epoch),
        committed=commit,
    )
    return ErrorCode(_call(client, request).error_code)


def _add(client: WireClient, txn_id: str, producer_id: int, epoch: int, topic: str) -> ErrorCode:
    response = _call(
        client,
        AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=txn_id,
            v3_and_below_producer_id=producer_id,
            v3_and_below_producer_epoch=i16(epoch),
            v3_and_below_topics=(AddPartitionsToTxnTopic(name=topic, partitions=(i32(0),)),),
        ),
        lambda r: r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
    )
    return ErrorCode(
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    )


def test_out_of_order_requests_get_kafkas_errors(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-txn", partitions=1)
    with WireClient(broker.bootstrap) as client:
        # Nothing known of the id yet.
        _call(client, FindCoordinatorRequest(key="bad-id", key_type=i8(1)))
        assert _end(client, "bad-id", 1234, 0, True) is ErrorCode.invalid_producer_id_mapping
        assert _add(client, "bad-id", 1234, 0, "bad-txn") is ErrorCode.invalid_producer_id_mapping

        # A transaction timeout above transaction.max.timeout.ms.
        too_long = _init(client, "bad-id", timeout_ms=900_001)
        assert ErrorCode(too_long.error_code) is ErrorCode.invalid_transaction_timeout

        first = _init(client, "bad-id")
        assert ErrorCode(first.error_code) is ErrorCode.none
        pid, epoch = first.producer_id, first.producer_epoch
        # Ending a transaction that never began.
        assert _end(client, "bad-id", pid, epoch, True) is ErrorCode.invalid_txn_state
        # The wrong producer id for the transactional id.
        assert (
            _add(client, "bad-id", pid + 1, epoch, "bad-txn")
            is ErrorCode.invalid_producer_id_mapping
        )
        # An unknown topic: nothing is added.
        assert (
            _add(client, "bad-id", pid, epoch, "no-such-topic")
            is ErrorCode.unknown_topic_or_partition
        )

        assert _add(client, "bad-id", pid, epoch, "bad-txn") is ErrorCode.none
        assert _end(client, "bad-id", pid, epoch, True) is ErrorCode.none
        # Abort after commit, and a second commit (a retry) once it is complete.
        deadline = time.monotonic() + 10
        while (
            code := _end(client, "bad-id", pid, epoch, False)
        ) is ErrorCode.concurrent_transactions:
            assert time.monotonic() < deadline
        assert code is ErrorCode.invalid_txn_state
        assert _end(client, "bad-id", pid, epoch, True) is ErrorCode.none

        # A newer producer of the same id fences this one: PRODUCER_FENCED from EndTxn v2
        # on, INVALID_PRODUCER_EPOCH before.
        second = _init(client, "bad-id")
        assert second.producer_epoch > epoch
        assert _end(client, "bad-id", pid, epoch, True) is ErrorCode.producer_fenced
        assert (
            _end(client, "bad-id", pid, epoch, True, old=True) is ErrorCode.invalid_producer_epoch
        )
        assert _add(client, "bad-id", pid, epoch, "bad-txn") is ErrorCode.producer_fenced

    # The id still works with a real client after all that.
    producer = transactional_producer(broker.bootstrap, "bad-id")
    producer.begin_transaction()
    producer.produce("bad-txn", value=b"fine")
    producer.commit_transaction(30)
    assert read_values(broker.bootstrap, "bad-txn", 1, "read_committed") == [b"fine"]
