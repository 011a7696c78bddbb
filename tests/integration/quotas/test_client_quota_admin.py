"""AlterClientQuotas / DescribeClientQuotas against a real broker: Kafka's entities,
defaults, validate_only, error codes and messages, match types and strict, persistence."""

from __future__ import annotations

from tests.integration.quotas.quota_wire import ANY, DEFAULT, EXACT, alter, describe, described
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient

INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35


def key(**entity: str | None) -> frozenset[tuple[str, str | None]]:
    return frozenset((t.replace("_", "-"), n) for t, n in entity.items())


def test_alter_and_describe_entities_and_defaults(broker_factory) -> None:  # type: ignore[no-untyped-def]
    broker: BrokerProcess = broker_factory()
    with WireClient(broker.bootstrap) as client:
        assert (
            alter(
                client,
                [
                    ({"client-id": "app/1 *~"}, {"producer_byte_rate": 1024.0}),
                    ({"client-id": None}, {"consumer_byte_rate": 2048.0}),
                    ({"user": "alice"}, {"request_percentage": 12.5}),
                    ({"user": "alice", "client-id": "app"}, {"producer_byte_rate": 10.0}),
                    ({"user": None, "client-id": None}, {"controller_mutation_rate": 3.0}),
                    ({"ip": "127.0.0.1"}, {"connection_creation_rate": 5.0}),
                ],
            )
            == [(0, None)] * 6
        )
        everything = described(describe(client, []))
        assert everything == {
            key(client_id="app/1 *~"): {"producer_byte_rate": 1024.0},
            key(client_id=None): {"consumer_byte_rate": 2048.0},
            key(user="alice"): {"request_percentage": 12.5},
            key(user="alice", client_id="app"): {"producer_byte_rate": 10.0},
            key(user=None, client_id=None): {"controller_mutation_rate": 3.0},
            key(ip="127.0.0.1"): {"connection_creation_rate": 5.0},
        }
        # EXACT, DEFAULT, ANY and strict, as ClientQuotasImage.describe.
        assert described(describe(client, [("client-id", EXACT, "app/1 *~")], strict=True)) == {
            key(client_id="app/1 *~"): {"producer_byte_rate": 1024.0}
        }
        assert set(described(describe(client, [("client-id", DEFAULT, None)]))) == {
            key(client_id=None),
            key(user=None, client_id=None),
        }
        assert set(described(describe(client, [("client-id", DEFAULT, None)], strict=True))) == {
            key(client_id=None)
        }
        assert set(described(describe(client, [("user", ANY, None)]))) == {
            key(user="alice"),
            key(user="alice", client_id="app"),
            key(user=None, client_id=None),
        }
        assert set(described(describe(client, [("user", EXACT, "alice")], strict=True))) == {
            key(user="alice")
        }
        assert set(described(describe(client, [("ip", ANY, None)]))) == {key(ip="127.0.0.1")}
        # validate_only changes nothing; removal drops the entity once it has no quota.
        assert alter(client, [({"user": "bob"}, {"producer_byte_rate": 5.0})], True) == [(0, None)]
        assert alter(client, [({"client-id": None}, {"consumer_byte_rate": None})]) == [(0, None)]
        after = described(describe(client, []))
        assert key(user="bob") not in after
        assert key(client_id=None) not in after
    # Persisted in the metadata store: a restart keeps them.
    broker.restart()
    with WireClient(broker.bootstrap) as client:
        assert described(describe(client, [("user", EXACT, "alice")], strict=True)) == {
            key(user="alice"): {"request_percentage": 12.5}
        }


def test_bad_alterations_get_kafkas_errors(broker_factory) -> None:  # type: ignore[no-untyped-def]
    broker: BrokerProcess = broker_factory()
    with WireClient(broker.bootstrap) as client:
        results = alter(
            client,
            [
                ({"client-id": "a"}, {"no_such_quota": 1.0}),
                ({"client-id": "b"}, {"producer_byte_rate": 0.0}),
                ({"client-id": "c"}, {"producer_byte_rate": 1.5}),
                ({"user": "u", "ip": "127.0.0.1"}, {"connection_creation_rate": 1.0}),
                ({"ip": "127.0.0.1"}, {"producer_byte_rate": 1.0}),
                ({"ip": "no-such-host.invalid"}, {"connection_creation_rate": 1.0}),
                ({}, {"producer_byte_rate": 1.0}),
                ({"group": "g"}, {"producer_byte_rate": 1.0}),
                ({"client-id": ""}, {"producer_byte_rate": 1.0}),
                ({"client-id": "d"}, {"producer_byte_rate": 1e20}),
                ([("client-id", "e"), ("client-id", "f")], {"producer_byte_rate": 1.0}),
                ({"client-id": "ok"}, {"producer_byte_rate": 1.0}),
                ({"client-id": "ok"}, {"producer_byte_rate": 2.0}),
            ],
        )
        assert results == [
            (INVALID_REQUEST, "Invalid configuration key no_such_quota"),
            (INVALID_REQUEST, "Quota producer_byte_rate must be greater than 0"),
            (INVALID_REQUEST, "producer_byte_rate cannot be a fractional value."),
            (
                INVALID_REQUEST,
                "Invalid quota entity combination, IP entity shouldnot be combined with User "
                "or ClientId",
            ),
            (INVALID_REQUEST, "Invalid configuration key producer_byte_rate"),
            (INVALID_REQUEST, "no-such-host.invalid is not a valid IP or resolvable host."),
            (INVALID_REQUEST, "Invalid empty client quota entity"),
            (INVALID_REQUEST, "Unhandled client quota entity type: group"),
            (INVALID_REQUEST, "Empty client-id not supported"),
            (INVALID_REQUEST, "Proposed value for producer_byte_rate is too large for a LONG."),
            (INVALID_REQUEST, "Invalid client quota entity, duplicate entity entry client-id"),
            (0, None),
            (
                INVALID_REQUEST,
                "Ignoring duplicate entity ClientQuotaEntity(entries={client-id=ok})",
            ),
        ]
        # Only the valid entry was applied.
        assert described(describe(client, [])) == {key(client_id="ok"): {"producer_byte_rate": 1.0}}
        for components, message in [
            (
                [("user", EXACT, None)],
                "Request specified MATCH_TYPE_EXACT, but set match string to null.",
            ),
            (
                [("user", DEFAULT, "x")],
                "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
            ),
            ([("user", 7, None)], "Unknown match type 7"),
            (
                [("user", ANY, None), ("user", ANY, None)],
                "Entity type user cannot appear more than once in the filter.",
            ),
            (
                [("ip", ANY, None), ("user", ANY, None)],
                "Invalid entity filter component combination. IP filter component should not be "
                "used with user or clientId filter component.",
            ),
        ]:
            response = describe(client, components)
            assert (int(response.error_code), response.error_message) == (INVALID_REQUEST, message)
            assert response.entries is None
        response = describe(client, [("group", ANY, None)])
        assert int(response.error_code) == UNSUPPORTED_VERSION
