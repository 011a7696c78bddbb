"""TxnOffsetCommit (key 28): offsets committed inside a transaction
(``send_offsets_to_transaction``).

They are written to ``__consumer_offsets`` in a transactional batch of the producer and
stay pending, invisible to OffsetFetch, until the transaction's marker reaches that
partition (``broker/txn_markers.py``): a commit makes them the group's offsets, an abort
drops them. The group coordinator answers once the batch is replicated. Before the
write, the transaction coordinator confirms the group's partition is in the producer's
transaction (``TxnVerifier.verify_offset_commit``, KIP-890): offsets that no marker would
ever end are never written.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.broker.handlers.offset_commit import offsets_to_commit
from odradek.coordinator.group.service import OFFSETS_TOPIC
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode
from odradek.protocol.types import TopicPartition

API_KEY = 28


async def _handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    errors, wanted = offsets_to_commit(ctx, request.topics)
    if wanted and request.group_id:
        broker = ctx.broker
        offsets_tp = TopicPartition(
            OFFSETS_TOPIC, broker.group_coordinator.partition_of(request.group_id)
        )
        refused = await broker.txn_verifier.verify_offset_commit(
            request.transactional_id,
            int(request.producer_id),
            int(request.producer_epoch),
            offsets_tp,
        )
        if refused is not ErrorCode.none:
            errors.update((item.tp, refused) for item in wanted)
            wanted = []
    if wanted:
        errors.update(
            await ctx.broker.group_coordinator.commit_transactional_offsets(
                request.group_id,
                producer_id=int(request.producer_id),
                producer_epoch=int(request.producer_epoch),
                member_id=getattr(request, "member_id", ""),
                generation_id=int(getattr(request, "generation_id", -1)),
                group_instance_id=getattr(request, "group_instance_id", None),
                offsets=wanted,
            )
        )
    topics = tuple(
        codec.build(
            module.TxnOffsetCommitResponseTopic,
            name=topic.name,
            partitions=tuple(
                codec.build(
                    module.TxnOffsetCommitResponsePartition,
                    partition_index=p.partition_index,
                    error_code=errors[TopicPartition(topic.name, p.partition_index)],
                )
                for p in topic.partitions
            ),
        )
        for topic in request.topics
    )
    return codec.build(module.TxnOffsetCommitResponse, throttle_time=ZERO_DURATION, topics=topics)


def handle(ctx: RequestContext, request: Any) -> Any:
    return _handle(ctx, request)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=4, handle=handle)
