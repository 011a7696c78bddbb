"""Transactional requests out of order, or naming the wrong producer, get the codes
Kafka answers with, and never leave the coordinator stuck: after each bad sequence a
confluent-kafka transactional producer with the same transactional id commits.

The expected codes are Kafka's (``TransactionCoordinator``: handleInitProducerId,
handleAddPartitionsToTransaction, endTransaction, handleDescribeTransactions;
``TransactionStateManager.listTransactionStates``; ``KafkaApis``: getCoordinator,
handleWriteTxnMarkersRequest, and the version-dependent PRODUCER_FENCED ->
INVALID_PRODUCER_EPOCH of InitProducerId < v4, AddPartitionsToTxn, AddOffsetsToTxn and
EndTxn < v2).
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.record_codec import BatchSpec, NewRecord, build_batch
from tests.integration.transactions.raw import RawTxnProducer, call, coordinator
from tests.integration.transactions.txn import read_values, transactional_producer
from tests.support.broker import BrokerProcess
from tests.support.clients import create_topic
from tests.support.wire import WireClient, init_producer_id_request, produce_request

FIND_COORDINATOR, INIT_PRODUCER_ID, ADD_PARTITIONS, ADD_OFFSETS = 10, 22, 24, 25
END_TXN, WRITE_TXN_MARKERS, TXN_OFFSET_COMMIT = 26, 27, 28
DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 65, 66
MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms' default

_values = itertools.count()


def _request(api_key: int, version: int, **fields: Any) -> Any:
    return codec.build(codec.request_class(api_key, version), **fields)


def _init(
    client: WireClient,
    txn_id: str,
    *,
    version: int = 4,
    timeout_ms: int = 60_000,
    producer_id: int = -1,
    epoch: int = -1,
) -> Any:
    return call(
        client,
        _request(
            INIT_PRODUCER_ID,
            version,
            transactional_id=txn_id,
            transaction_timeout=i32Timedelta.parse(datetime.timedelta(milliseconds=timeout_ms)),
            producer_id=producer_id,
            producer_epoch=i16(epoch),
        ),
    )


def _init_error(client: WireClient, txn_id: str, **kwargs: Any) -> ErrorCode:
    return ErrorCode(_init(client, txn_id, **kwargs).error_code)


def _end(
    client: WireClient, txn_id: str, pid: int, epoch: int, *, commit: bool, version: int = 3
) -> ErrorCode:
    request = _request(
        END_TXN,
        version,
        transactional_id=txn_id,
        producer_id=pid,
        producer_epoch=i16(epoch),
        committed=commit,
    )
    return ErrorCode(call(client, request).error_code)


def _add(
    client: WireClient,
    txn_id: str,
    pid: int,
    epoch: int,
    partitions: dict[str, tuple[int, ...]],
    *,
    version: int = 3,
) -> dict[tuple[str, int], ErrorCode]:
    module = codec.request_module(ADD_PARTITIONS, version)
    request = codec.build(
        module.AddPartitionsToTxnRequest,
        v3_and_below_transactional_id=txn_id,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=i16(epoch),
        v3_and_below_topics=tuple(
            codec.build(module.AddPartitionsToTxnTopic, name=topic, partitions=tuple(indexes))
            for topic, indexes in partitions.items()
        ),
    )
    response = call(
        client,
        request,
        lambda r: r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
    )
    return {
        (topic.name, int(p.partition_index)): ErrorCode(p.partition_error_code)
        for topic in response.results_by_topic_v3_and_below
        for p in topic.results_by_partition
    }


def _add_one(
    client: WireClient, txn_id: str, pid: int, epoch: int, topic: str, *, version: int = 3
) -> ErrorCode:
    return _add(client, txn_id, pid, epoch, {topic: (0,)}, version=version)[(topic, 0)]


def _add_offsets(
    client: WireClient, txn_id: str, pid: int, epoch: int, group: str, *, version: int = 3
) -> ErrorCode:
    request = _request(
        ADD_OFFSETS,
        version,
        transactional_id=txn_id,
        producer_id=pid,
        producer_epoch=i16(epoch),
        group_id=group,
    )
    return ErrorCode(call(client, request).error_code)


def _commit_offset(
    client: WireClient,
    txn_id: str,
    pid: int,
    epoch: int,
    *,
    group: str,
    topic: str,
    version: int = 3,
) -> ErrorCode:
    module = codec.request_module(TXN_OFFSET_COMMIT, version)
    partition = codec.build(
        module.TxnOffsetCommitRequestPartition,
        partition_index=i32(0),
        committed_offset=i64(1),
        committed_leader_epoch=i32(-1),
        committed_metadata="",
    )
    request = codec.build(
        module.TxnOffsetCommitRequest,
        transactional_id=txn_id,
        group_id=group,
        producer_id=pid,
        producer_epoch=i16(epoch),
        generation_id=i32(-1),
        member_id="",
        group_instance_id=None,
        topics=(
            codec.build(module.TxnOffsetCommitRequestTopic, name=topic, partitions=(partition,)),
        ),
    )
    response = call(client, request, lambda r: r.topics[0].partitions[0].error_code)
    return ErrorCode(response.topics[0].partitions[0].error_code)


def _state(client: WireClient, txn_id: str) -> str | None:
    """The id's state as ListTransactions names it (DescribeTransactions answers a start
    time of -1 for an id with no transaction open, which kio will not decode)."""
    response = client.call(_request(LIST_TRANSACTIONS, 0, state_filters=(), producer_id_filters=()))
    found = [t for t in response.transaction_states if t.transactional_id == txn_id]
    return found[0].transaction_state if found else None


def _not_described(client: WireClient, txn_id: str) -> ErrorCode:
    """DescribeTransactions' error for an id it cannot describe."""
    response = client.call(_request(DESCRIBE_TRANSACTIONS, 0, transactional_ids=(txn_id,)))
    (state,) = response.transaction_states
    assert state.transaction_state == ""
    return ErrorCode(state.error_code)


def _settled(client: WireClient, txn_id: str) -> str:
    """The id's state once the markers of an ended transaction are written (EndTxn is
    answered at PrepareCommit/PrepareAbort)."""
    deadline = time.monotonic() + 10
    while (state := _state(client, txn_id) or "").startswith("Prepare"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def _still_works(broker: BrokerProcess, txn_id: str, topic: str) -> None:
    """A real transactional producer with ``txn_id`` commits, and its record is read."""
    value = b"fine-%d" % next(_values)
    producer = transactional_producer(broker.bootstrap, txn_id)
    producer.begin_transaction()
    producer.produce(topic, value=value, partition=0)
    producer.commit_transaction(30)
    assert value in read_values(broker.bootstrap, topic, 1, "read_committed", settle=1.0)


def test_unknown_transactional_id(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-unknown", partitions=1)
    with WireClient(broker.bootstrap) as client:
        coordinator(client, "unknown-id")
        for version in (0, 3):
            assert (
                _end(client, "unknown-id", 1234, 0, commit=True, version=version)
                is ErrorCode.invalid_producer_id_mapping
            )
            assert (
                _add_one(client, "unknown-id", 1234, 0, "bad-unknown", version=version)
                is ErrorCode.invalid_producer_id_mapping
            )
            assert (
                _add_offsets(client, "unknown-id", 1234, 0, "g", version=version)
                is ErrorCode.invalid_producer_id_mapping
            )
        assert _not_described(client, "unknown-id") is ErrorCode.transactional_id_not_found
    _still_works(broker, "unknown-id", "bad-unknown")


def test_wrong_producer_id(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-pid", partitions=1)
    with WireClient(broker.bootstrap) as client:
        coordinator(client, "wrong-pid")
        producer = RawTxnProducer(client, "wrong-pid")
        pid, epoch = producer.producer_id, producer.epoch
        other = pid + 1000
        assert _add_one(client, "wrong-pid", other, epoch, "bad-pid") is (
            ErrorCode.invalid_producer_id_mapping
        )
        assert _add_offsets(client, "wrong-pid", other, epoch, "g") is (
            ErrorCode.invalid_producer_id_mapping
        )
        assert producer.add("bad-pid", 0) == [ErrorCode.none]
        assert _end(client, "wrong-pid", other, epoch, commit=True) is (
            ErrorCode.invalid_producer_id_mapping
        )
        # KIP-360: a producer recovering with another producer id than the id's is fenced.
        assert _init_error(client, "wrong-pid", version=3, producer_id=other, epoch=0) is (
            ErrorCode.invalid_producer_epoch
        )
        assert _init_error(client, "wrong-pid", version=4, producer_id=other, epoch=0) is (
            ErrorCode.producer_fenced
        )
        # A producer id without an epoch (or the other way round) is not a request.
        assert _init_error(client, "wrong-pid", producer_id=pid, epoch=-1) is (
            ErrorCode.invalid_request
        )
        # None of that touched the open transaction.
        assert _state(client, "wrong-pid") == "Ongoing"
        assert producer.end(commit=True) is ErrorCode.none
        assert _settled(client, "wrong-pid") == "CompleteCommit"
    _still_works(broker, "wrong-pid", "bad-pid")


def test_old_epoch_after_a_new_producer(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-epoch", partitions=1)
    txn_id, group = "old-epoch", "old-epoch-group"
    with WireClient(broker.bootstrap) as client:
        coordinator(client, txn_id)
        client.call(_request(FIND_COORDINATOR, 3, key_type=i8(0), key=group))
        first = RawTxnProducer(client, txn_id)
        pid, old = first.producer_id, first.epoch
        assert first.add("bad-epoch", 0) == [ErrorCode.none]
        assert _add_offsets(client, txn_id, pid, old, group) is ErrorCode.none
        assert _commit_offset(client, txn_id, pid, old, group=group, topic="bad-epoch") is (
            ErrorCode.none
        )

        # A new producer of the id aborts the open transaction under a bumped epoch,
        # which fences the first producer everywhere the transaction went.
        second = RawTxnProducer(client, txn_id)
        assert second.producer_id == pid and second.epoch > old + 1
        fenced = {1: ErrorCode.invalid_producer_epoch, 2: ErrorCode.producer_fenced}
        for version, code in fenced.items():
            assert _end(client, txn_id, pid, old, commit=True, version=version) is code
            assert _end(client, txn_id, pid, old, commit=False, version=version) is code
            assert _add_one(client, txn_id, pid, old, "bad-epoch", version=version) is code
            assert _add_offsets(client, txn_id, pid, old, group, version=version) is code
        assert _end(client, txn_id, pid, old, commit=True, version=4) is ErrorCode.producer_fenced
        for version in (0, 3):
            stale = _commit_offset(
                client, txn_id, pid, old, group=group, topic="bad-epoch", version=version
            )
            assert stale is ErrorCode.invalid_producer_epoch
        # KIP-360 with the old epoch: neither the current nor the previous epoch.
        assert _init_error(client, txn_id, version=3, producer_id=pid, epoch=old) is (
            ErrorCode.invalid_producer_epoch
        )
        assert _init_error(client, txn_id, version=4, producer_id=pid, epoch=old) is (
            ErrorCode.producer_fenced
        )
        assert _state(client, txn_id) == "Empty"

        assert second.add("bad-epoch", 0) == [ErrorCode.none]
        assert second.end(commit=True) is ErrorCode.none
        assert _settled(client, txn_id) == "CompleteCommit"
    _still_works(broker, txn_id, "bad-epoch")


def test_end_txn_in_the_wrong_state(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-state", partitions=2)
    txn_id = "wrong-state"
    with WireClient(broker.bootstrap) as client:
        coordinator(client, txn_id)
        producer = RawTxnProducer(client, txn_id)
        pid, epoch = producer.producer_id, producer.epoch

        def end(commit: bool) -> ErrorCode:
            return _end(client, txn_id, pid, epoch, commit=commit)

        # Empty: nothing to commit or abort (Kafka has no no-op commit in Transactions V1).
        assert end(commit=True) is ErrorCode.invalid_txn_state
        assert end(commit=False) is ErrorCode.invalid_txn_state

        # A partition that does not exist: nothing is added, the rest is not attempted.
        assert _add(client, txn_id, pid, epoch, {"bad-state": (0, 7), "no-such-topic": (0,)}) == {
            ("bad-state", 0): ErrorCode.operation_not_attempted,
            ("bad-state", 7): ErrorCode.unknown_topic_or_partition,
            ("no-such-topic", 0): ErrorCode.unknown_topic_or_partition,
        }
        assert _state(client, txn_id) == "Empty"

        assert producer.add("bad-state", 0, 1) == [ErrorCode.none, ErrorCode.none]
        assert end(commit=True) is ErrorCode.none
        # The other outcome is refused whether the commit is still being written
        # (PrepareCommit) or done (CompleteCommit); once done, a retried commit succeeds.
        assert end(commit=False) is ErrorCode.invalid_txn_state
        assert _settled(client, txn_id) == "CompleteCommit"
        assert end(commit=False) is ErrorCode.invalid_txn_state
        assert end(commit=True) is ErrorCode.none

        assert producer.add("bad-state", 0) == [ErrorCode.none]
        assert end(commit=False) is ErrorCode.none
        assert end(commit=True) is ErrorCode.invalid_txn_state
        assert _settled(client, txn_id) == "CompleteAbort"
        assert end(commit=True) is ErrorCode.invalid_txn_state
        assert end(commit=False) is ErrorCode.none
    _still_works(broker, txn_id, "bad-state")


def test_init_producer_id_bad_input(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-init", partitions=1)
    txn_id = "bad-init"
    with WireClient(broker.bootstrap) as client:
        coordinator(client, txn_id)
        for timeout_ms in (MAX_TIMEOUT_MS + 1, 0, -1):
            for version in (0, 4):
                assert _init_error(client, txn_id, version=version, timeout_ms=timeout_ms) is (
                    ErrorCode.invalid_transaction_timeout
                ), (timeout_ms, version)
        # The refused requests created nothing: the id starts at its first epoch.
        accepted = _init(client, txn_id, timeout_ms=MAX_TIMEOUT_MS)
        assert (ErrorCode(accepted.error_code), accepted.producer_epoch) == (ErrorCode.none, 0)
        assert _add_one(client, txn_id, accepted.producer_id, 0, "bad-init") is ErrorCode.none
        response = client.call(_request(DESCRIBE_TRANSACTIONS, 0, transactional_ids=(txn_id,)))
        (state,) = response.transaction_states
        assert state.transaction_timeout == datetime.timedelta(milliseconds=MAX_TIMEOUT_MS)
        assert _end(client, txn_id, accepted.producer_id, 0, commit=False) is ErrorCode.none
    _still_works(broker, txn_id, "bad-init")


def test_empty_transactional_id(broker: BrokerProcess) -> None:
    """Kafka's FindCoordinator answers an empty key like any other (its partition is
    0); the coordinator then refuses the empty id with INVALID_REQUEST."""
    create_topic(broker.bootstrap, "bad-empty", partitions=1)
    with WireClient(broker.bootstrap) as client:
        for version in (1, 3):
            found = client.call(_request(FIND_COORDINATOR, version, key_type=i8(1), key=""))
            assert ErrorCode(found.error_code) is ErrorCode.none
            assert found.port == broker.port
        found = client.call(_request(FIND_COORDINATOR, 4, key_type=i8(1), coordinator_keys=("",)))
        assert ErrorCode(found.coordinators[0].error_code) is ErrorCode.none

        assert _init_error(client, "") is ErrorCode.invalid_request
        assert _end(client, "", 1234, 0, commit=True) is ErrorCode.invalid_request
        assert _add_one(client, "", 1234, 0, "bad-empty") is ErrorCode.invalid_request
        assert _add_offsets(client, "", 1234, 0, "g") is ErrorCode.invalid_request
        assert _not_described(client, "") is ErrorCode.invalid_request


def test_write_txn_markers_for_unknown_partitions(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-markers", partitions=1)
    module = codec.request_module(WRITE_TXN_MARKERS, 1)
    marker = codec.build(
        module.WritableTxnMarker,
        producer_id=4321,
        producer_epoch=i16(0),
        transaction_result=False,
        coordinator_epoch=i32(0),
        topics=(
            codec.build(module.WritableTxnMarkerTopic, name="no-such", partition_indexes=(i32(0),)),
            codec.build(
                module.WritableTxnMarkerTopic, name="bad-markers", partition_indexes=(i32(3),)
            ),
        ),
    )
    with WireClient(broker.bootstrap) as client:
        response = client.call(_request(WRITE_TXN_MARKERS, 1, markers=(marker,)))
        (result,) = response.markers
        assert result.producer_id == 4321
        assert {
            (topic.name, int(p.partition_index)): ErrorCode(p.error_code)
            for topic in result.topics
            for p in topic.partitions
        } == {
            ("no-such", 0): ErrorCode.unknown_topic_or_partition,
            ("bad-markers", 3): ErrorCode.unknown_topic_or_partition,
        }
        assert client.call(_request(WRITE_TXN_MARKERS, 1, markers=())).markers == ()
    _still_works(broker, "after-markers", "bad-markers")


def test_list_transactions_with_unknown_states(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "bad-list", partitions=1)
    with WireClient(broker.bootstrap) as client:
        coordinator(client, "listed-open")
        producer = RawTxnProducer(client, "listed-open")
        assert producer.add("bad-list", 0) == [ErrorCode.none]
        for version in (0, 1):

            def listed(*states: str, version: int = version) -> tuple[ErrorCode, Any, set[str]]:
                response = client.call(
                    _request(
                        LIST_TRANSACTIONS,
                        version,
                        state_filters=states,
                        producer_id_filters=(),
                        duration_filter=i64(-1),
                    )
                )
                return (
                    ErrorCode(response.error_code),
                    response.unknown_state_filters,
                    {t.transactional_id for t in response.transaction_states},
                )

            # Only unknown states: none can match, and they are named back.
            assert listed("Bogus") == (ErrorCode.none, ("Bogus",), set())
            # Known and unknown: the known ones filter, the unknown ones are named.
            error, unknown, ids = listed("Bogus", "Ongoing", "ongoing")
            assert (error, unknown) == (ErrorCode.none, ("Bogus", "ongoing"))
            assert "listed-open" in ids
        assert producer.end(commit=False) is ErrorCode.none
    _still_works(broker, "listed-open", "bad-list")


def test_txn_offset_commit_outside_the_transaction_is_refused(
    txn_broker_factory: Callable[..., BrokerProcess],
) -> None:
    """Kafka verifies the group's ``__consumer_offsets`` partition is in the producer's
    transaction before writing (GroupCoordinator.handleTxnCommitOffsets ->
    maybeStartTransactionVerificationForPartition); the coordinator's PRODUCER_FENCED
    reaches the producer as INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE as
    INVALID_TXN_STATE before v4 (AddPartitionsToTxnManager)."""
    broker = txn_broker_factory()  # its own: a wrong answer hangs __consumer_offsets
    create_topic(broker.bootstrap, "unverified-offsets", partitions=1)
    txn_id, group = "unverified-offsets", "unverified-group"
    with WireClient(broker.bootstrap) as client:
        coordinator(client, txn_id)
        client.call(_request(FIND_COORDINATOR, 3, key_type=i8(0), key=group))
        first = RawTxnProducer(client, txn_id)
        second = RawTxnProducer(client, txn_id)
        pid, topic = first.producer_id, "unverified-offsets"
        answers = [
            _commit_offset(client, txn_id, pid, first.epoch, group=group, topic=topic),
            _commit_offset(client, txn_id, pid + 1000, 0, group=group, topic=topic),
            _commit_offset(client, txn_id, pid, second.epoch, group=group, topic=topic),
        ]
    assert answers == [
        ErrorCode.invalid_producer_epoch,
        ErrorCode.invalid_producer_id_mapping,
        ErrorCode.invalid_txn_state,
    ]


def test_transactional_records_without_a_transactional_id_are_refused(
    broker: BrokerProcess,
) -> None:
    """As Kafka: transactional records are authorised against the request's
    transactional id; with none, the whole request gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    and no transaction is opened in the partition."""
    create_topic(broker.bootstrap, "no-txn-id", partitions=1)
    with WireClient(broker.bootstrap) as client:
        init = client.call(init_producer_id_request())
        batch = build_batch(
            [NewRecord(key=None, value=b"stray")],
            BatchSpec(
                producer_id=init.producer_id,
                producer_epoch=init.producer_epoch,
                base_sequence=0,
                transactional=True,
            ),
        )
        response = client.call(produce_request("no-txn-id", 0, batch))
    code = response.responses[0].partition_responses[0].error_code
    assert ErrorCode(code) is ErrorCode.transactional_id_authorization_failed
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("no-txn-id", value=b"plain")
    plain.flush(10)
    assert read_values(broker.bootstrap, "no-txn-id", 1, "read_committed") == [b"plain"]
