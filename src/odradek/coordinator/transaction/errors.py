"""Error codes the transaction coordinator answers with, as Kafka maps them."""

from __future__ import annotations

from odradek.protocol.errors import ErrorCode

INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26

_FIRST_VERSION_WITH_PRODUCER_FENCED = {
    INIT_PRODUCER_ID: 4,
    ADD_PARTITIONS_TO_TXN: 2,
    ADD_OFFSETS_TO_TXN: 2,
    END_TXN: 2,
}


def error_for_version(error: ErrorCode, api_key: int, api_version: int) -> ErrorCode:
    """PRODUCER_FENCED as a client of ``api_version`` understands it: older versions get
    INVALID_PRODUCER_EPOCH instead (KafkaApis: InitProducerId < v4, AddPartitionsToTxn,
    AddOffsetsToTxn and EndTxn < v2)."""
    first = _FIRST_VERSION_WITH_PRODUCER_FENCED.get(api_key)
    if error is ErrorCode.producer_fenced and first is not None and api_version < first:
        return ErrorCode.invalid_producer_epoch
    return error


def append_error(error: ErrorCode) -> ErrorCode:
    """The coordinator's answer when appending to ``__transaction_state`` failed with
    ``error`` (Kafka's ``TransactionStateManager.appendTransactionToLog``): clients
    retry COORDINATOR_NOT_AVAILABLE, and look the coordinator up again after
    NOT_COORDINATOR."""
    if error in (
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
    ):
        return ErrorCode.coordinator_not_available
    if error in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if error in (ErrorCode.message_too_large, ErrorCode.record_list_too_large):
        return ErrorCode.unknown_server_error
    return error
