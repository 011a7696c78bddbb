"""ApiVersions (key 18): the versions of every API this broker serves.

Computed from the registered handlers, never a hand-kept list. An ApiVersions request
at a version we do not know is answered at v0 with UNSUPPORTED_VERSION and our list
(KIP-511), which librdkafka uses to retry (see the connection's dispatch).
"""

from __future__ import annotations

import datetime
from typing import Any

from odradek.broker.api import Handler, RequestContext
from odradek.protocol import codec
from odradek.protocol.errors import ErrorCode

API_KEY = 18
_ZERO = datetime.timedelta(0)


def versions_response(ctx_broker: Any, version: int, error: ErrorCode) -> Any:
    module = codec.response_module(API_KEY, version)
    api_keys = tuple(
        codec.build(
            module.ApiVersion,
            api_key=handler.api_key,
            min_version=handler.min_version,
            max_version=handler.max_version,
        )
        for handler in sorted(ctx_broker.handlers.values(), key=lambda h: h.api_key)
    )
    return codec.build(
        module.ApiVersionsResponse,
        error_code=error,
        api_keys=api_keys,
        throttle_time=_ZERO,
    )


def handle(ctx: RequestContext, request: Any) -> Any:
    return versions_response(ctx.broker, ctx.api_version, ErrorCode.none)


HANDLER = Handler(api_key=API_KEY, min_version=0, max_version=4, handle=handle)
