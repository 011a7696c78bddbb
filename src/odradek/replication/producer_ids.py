"""Producer ids for idempotent producers (InitProducerId without a transactional id)."""

from __future__ import annotations

from odradek.cluster.metadata import MetadataStore
from odradek.protocol.errors import ErrorCode, KafkaError

MAX_EPOCH = 32767


class ProducerIdManager:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def init_producer_id(self, producer_id: int, producer_epoch: int) -> tuple[int, int]:
        """(id, epoch) for a producer; KIP-360: a known id asks for its epoch to be bumped.

        An idempotent producer's id is not tracked by a coordinator, so a bump request
        gets the next epoch of the id it names, or a new id once the epoch would overflow.
        """
        if producer_id < 0:
            if producer_epoch >= 0:
                raise KafkaError(
                    "producer epoch given without producer id", ErrorCode.invalid_request
                )
            return self._store.allocate_producer_id(), 0
        if producer_epoch < 0:
            raise KafkaError("producer id given without epoch", ErrorCode.invalid_request)
        if producer_epoch + 1 > MAX_EPOCH:
            return self._store.allocate_producer_id(), 0
        return producer_id, producer_epoch + 1
