"""AlterClientQuotas / DescribeClientQuotas over the wire (kafka-python 3.0 has neither)."""

from __future__ import annotations

from typing import Any

from kio.schema.alter_client_quotas.v1 import request as alter_v1
from kio.schema.describe_client_quotas.v1 import request as describe_v1
from kio.static.primitive import f64, i8

from tests.support.wire import WireClient

EXACT, DEFAULT, ANY = 0, 1, 2


def alter(
    client: WireClient,
    entries: list[
        tuple[dict[str, str | None] | list[tuple[str, str | None]], dict[str, float | None]]
    ],
    validate_only: bool = False,
) -> list[tuple[int, str | None]]:
    """Apply ``entries`` (entity, {key: value or None to remove}); (error, message) each."""
    request = alter_v1.AlterClientQuotasRequest(
        entries=tuple(
            alter_v1.EntryData(
                entity=tuple(
                    alter_v1.EntityData(entity_type=t, entity_name=n)
                    for t, n in (entity.items() if isinstance(entity, dict) else entity)
                ),
                ops=tuple(
                    alter_v1.OpData(key=k, value=f64(float(v or 0.0)), remove=v is None)
                    for k, v in ops.items()
                ),
            )
            for entity, ops in entries
        ),
        validate_only=validate_only,
    )
    response = client.call(request)
    return [(int(e.error_code), e.error_message) for e in response.entries]


def describe(
    client: WireClient, components: list[tuple[str, int, str | None]], strict: bool = False
) -> Any:
    request = describe_v1.DescribeClientQuotasRequest(
        components=tuple(
            describe_v1.ComponentData(entity_type=t, match_type=i8(m), match=n)
            for t, m, n in components
        ),
        strict=strict,
    )
    return client.call(request)


def described(response: Any) -> dict[frozenset[tuple[str, str | None]], dict[str, float]]:
    assert int(response.error_code) == 0, response.error_message
    return {
        frozenset((e.entity_type, e.entity_name) for e in entry.entity): {
            v.key: float(v.value) for v in entry.values
        }
        for entry in response.entries
    }
