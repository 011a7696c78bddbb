"""DescribeCluster (key 60): cluster id, controller and brokers (the admin client's view)."""

from __future__ import annotations

from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.broker.handlers.common import ZERO_DURATION
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 60
BROKERS_ENDPOINT = 1


def handle(ctx: RequestContext, request: Any) -> Any:
    module = codec.response_module(API_KEY, ctx.api_version)
    broker = ctx.broker
    endpoint_type = getattr(request, "endpoint_type", BROKERS_ENDPOINT)
    if endpoint_type != BROKERS_ENDPOINT:
        return codec.build(
            module.DescribeClusterResponse,
            throttle_time=ZERO_DURATION,
            error_code=ErrorCode.unsupported_endpoint_type,
            error_message="Only broker endpoints are served by brokers.",
            endpoint_type=endpoint_type,
            cluster_id=broker.cluster_id,
            brokers=(),
        )
    return codec.build(
        module.DescribeClusterResponse,
        throttle_time=ZERO_DURATION,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=endpoint_type,
        cluster_id=broker.cluster_id,
        controller_id=broker.metadata.controller_id,
        brokers=tuple(
            codec.build(
                module.DescribeClusterBroker,
                broker_id=broker_id,
                host=endpoint.host,
                port=endpoint.port,
                rack=rack,
            )
            for broker_id, endpoint, rack in broker.live_brokers(ctx.listener)
        ),
    )


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=1, handle=handle)
