"""InitProducerId (key 22): producer ids and epochs for idempotent producers.

Transactional ids need the transaction coordinator, which this broker does not have yet:
they are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error in every
client, rather than a retriable one that would leave a transactional producer hanging.
"""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 22


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    producer_id, epoch, error = -1, -1, ErrorCode.none
    if request.transactional_id is not None:
        error = ErrorCode.transactional_id_authorization_failed
    else:
        try:
            producer_id, epoch = ctx.broker.producer_ids.init_producer_id(
                getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1)
            )
        except KafkaError as exc:
            error = exc.error_code
    return codec.build(
        module.InitProducerIdResponse,
        throttle_time=ZERO_DURATION,
        error_code=error,
        producer_id=producer_id,
        producer_epoch=epoch,
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=5, handle=handle)
