"""``odradek configs``: describe and alter configs of topics, brokers, clients and users,
with ``kafka-configs.sh``'s option names and output.

Changes to topics and brokers named by id go through confluent-kafka's AdminClient
(IncrementalAlterConfigs). The rest is sent with the raw protocol client
(``cli/_wire.py``), because librdkafka cannot say it: a broker resource with an empty
name, which is how Kafka addresses the cluster-wide default (``--entity-default``), is
refused; a config's synonyms come back keyed by name, so a chain such as
log.retention.hours (static) <- log.retention.hours (default) loses a link (every
describe uses DescribeConfigs v4); and there are no client quota APIs (clients and
users, whose "configs" are quotas as in kafka-configs: DescribeClientQuotas (48),
AlterClientQuotas (49)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from odradek.cli._kafka import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    KafkaException,
    ResourceType,
)
from odradek.cli._wire import BrokerConnection, build_request, error_of, wire_brokers
from odradek.cli.common import (
    DEFAULT_BOOTSTRAP,
    REQUEST_TIMEOUT_S,
    BootstrapOption,
    ClientOptions,
    CliError,
    CommandConfigOption,
    PropertyOption,
    admin_client,
    describe_kafka_exception,
    fetch_metadata,
    reported_errors,
    stdout_console,
    usage_error,
)
from odradek.protocol import codec

configs_app = typer.Typer(
    help="Describe and alter topic, broker, client and user configs (kafka-configs).",
    no_args_is_help=True,
)

ENTITY_TYPES = ("topics", "brokers", "clients", "users")
QUOTA_ENTITY = {"clients": "client-id", "users": "user"}
"""kafka-configs' entity types for quotas, and their DescribeClientQuotas names."""
TOPIC, BROKER = 2, 4
DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS = 32, 44
DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49
SET, DELETE = 0, 1
MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY = 0, 1, 2
SOURCE_NAMES = {
    0: "UNKNOWN",
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
}
"""Java's ``ConfigEntry.ConfigSource`` names, which kafka-configs prints."""


def register(app: typer.Typer) -> None:
    app.add_typer(configs_app, name="configs")


@dataclass(frozen=True, slots=True)
class Entry:
    """One described config, whichever client fetched it."""

    name: str
    value: str | None
    source: int
    sensitive: bool
    read_only: bool
    synonyms: tuple[tuple[str, str | None, int], ...]


EntityTypeOption = Annotated[
    str,
    typer.Option("--entity-type", help="topics, brokers, clients or users.", show_default=False),
]
EntityNameOption = Annotated[
    str | None,
    typer.Option("--entity-name", help="Topic name, broker id, client id or user name."),
]
EntityDefaultOption = Annotated[
    bool,
    typer.Option(
        "--entity-default",
        help="The default entity: cluster-wide broker configs, or the default client/user.",
    ),
]


def _entity(entity_type: str, name: str | None, default: bool) -> tuple[str, str | None]:
    """Check the entity options as kafka-configs does; None names the default entity."""
    if entity_type not in ENTITY_TYPES:
        raise usage_error(
            f"--entity-type must be one of {', '.join(ENTITY_TYPES)}, got {entity_type!r}"
        )
    if name is not None and default:
        raise usage_error("give either --entity-name or --entity-default, not both")
    if default:
        if entity_type == "topics":
            raise usage_error("--entity-default is not supported for topics; use --entity-name")
        return entity_type, None
    if name is None or not name:
        raise usage_error(
            f"--entity-name is required for --entity-type {entity_type} "
            "(or --entity-default for brokers, clients and users)"
        )
    if entity_type == "brokers" and not name.isdigit():
        raise usage_error(
            f"--entity-name for brokers must be a broker id (an integer), got {name!r}; "
            "use --entity-default for the cluster-wide default"
        )
    return entity_type, name


# --- describe -----------------------------------------------------------------------------


@configs_app.command("describe")
def describe(
    *,
    entity_type: EntityTypeOption,
    entity_name: EntityNameOption = None,
    entity_default: EntityDefaultOption = False,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Every config, not only those set dynamically."),
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Print an entity's configs as kafka-configs --describe does; without
    --entity-name or --entity-default, every entity of the type (every topic; every
    broker and the cluster default; every client or user with quotas)."""
    with reported_errors():
        options = ClientOptions.of(bootstrap, command_config, properties)
        console = stdout_console()
        if entity_name is None and not entity_default and entity_type in ENTITY_TYPES:
            if entity_type in QUOTA_ENTITY:
                every = _describe_quotas(options, QUOTA_ENTITY[entity_type], None, every=True)
                for name, quotas in every:
                    _print_quotas(console, entity_type, name, quotas)
                return
            for name in _every_entity(options, entity_type):
                _print_configs(console, options, entity_type, name, all_)
            return
        kind, name = _entity(entity_type, entity_name, entity_default)
        if kind in QUOTA_ENTITY:
            for found, quotas in _describe_quotas(options, QUOTA_ENTITY[kind], name) or [
                (name, {})
            ]:
                _print_quotas(console, kind, found, quotas)
            return
        _print_configs(console, options, kind, name, all_)


def _every_entity(options: ClientOptions, kind: str) -> list[str | None]:
    """kafka-configs' entities when none is named: every topic (internal ones too);
    every broker, then the cluster-wide default."""
    metadata = fetch_metadata(admin_client(options), options.bootstrap)
    if kind == "topics":
        return [str(name) for name in sorted(metadata.topics)]
    brokers: list[str | None] = [str(b) for b in sorted(metadata.brokers)]
    return [*brokers, None]


def _print_quotas(console: Any, kind: str, name: str | None, quotas: dict[str, float]) -> None:
    who = _quota_entity_label(kind, name)
    values = ", ".join(f"{key}={_quota_text(value)}" for key, value in quotas.items())
    console.print(f"Quota configs for {who} are {values}", markup=False)


def _print_configs(
    console: Any, options: ClientOptions, kind: str, name: str | None, all_: bool
) -> None:
    entries = _describe(options, kind, name)
    if not all_:
        wanted = {"topics": 1, "brokers": 2 if name is not None else 3}[kind]
        entries = [entry for entry in entries if entry.source == wanted]
    console.print(f"{_heading(kind, name, all_)} are:", markup=False)
    for entry in entries:
        synonyms = ", ".join(
            f"{SOURCE_NAMES.get(source, str(source))}:{synonym}={_text(value)}"
            for synonym, value, source in entry.synonyms
        )
        value = "null" if entry.sensitive else _text(entry.value)
        console.print(
            f"  {entry.name}={value} sensitive={str(entry.sensitive).lower()} "
            f"synonyms={{{synonyms}}}",
            markup=False,
        )


def _heading(kind: str, name: str | None, all_: bool) -> str:
    prefix = "All configs" if all_ else "Dynamic configs"
    if kind == "topics":
        return f"{prefix} for topic {name}"
    if name is None:
        return "Default configs for brokers in the cluster"
    return f"{prefix} for broker {name}"


def _text(value: str | None) -> str:
    return "null" if value is None else value


def _quota_text(value: float) -> str:
    return repr(float(value))


def _quota_entity_label(kind: str, name: str | None) -> str:
    label = QUOTA_ENTITY[kind]
    return f"the default {label}" if name is None else f"{label} '{name}'"


def _describe(options: ClientOptions, kind: str, name: str | None) -> list[Entry]:
    """DescribeConfigs v4 with synonyms, sent by the raw client: confluent-kafka keys a
    config's synonyms by name, so a chain such as log.retention.hours (static) <-
    log.retention.hours (default) loses a link. A broker id is asked of that broker
    (only it can describe itself), anything else of any broker."""
    resource_type = TOPIC if kind == "topics" else BROKER
    request = _request(
        DESCRIBE_CONFIGS,
        4,
        resources=(
            codec.build(
                codec.request_module(DESCRIBE_CONFIGS, 4).DescribeConfigsResource,
                resource_type=resource_type,
                resource_name=name or "",
                configuration_keys=None,
            ),
        ),
        include_synonyms=True,
        include_documentation=False,
    )
    broker = int(name) if kind == "brokers" and name is not None else None
    with _connect(options, broker) as connection:
        (result,) = connection.send(request).results
    what = "the broker default" if name is None else _label(kind, name)
    _check(result.error_code, result.error_message, f"cannot describe {what}")
    return [
        Entry(
            c.name,
            c.value,
            int(c.config_source),
            bool(c.is_sensitive),
            bool(c.read_only),
            tuple((s.name, s.value, int(s.source)) for s in c.synonyms),
        )
        for c in sorted(result.configs, key=lambda c: c.name)
    ]


def _describe_quotas(
    options: ClientOptions, entity: str, name: str | None, *, every: bool = False
) -> list[tuple[str | None, dict[str, float]]]:
    """(entity name, quotas) of the entities of one type that match ``name`` (None:
    the default entity), or ``every`` entity of the type; by name, the default last."""
    module = codec.request_module(DESCRIBE_CLIENT_QUOTAS, 1)
    if every:
        match_type, match = MATCH_ANY, None
    else:
        match_type, match = (MATCH_DEFAULT, None) if name is None else (MATCH_EXACT, name)
    component = codec.build(
        module.ComponentData, entity_type=entity, match_type=match_type, match=match
    )
    request = _request(DESCRIBE_CLIENT_QUOTAS, 1, components=(component,), strict=True)
    with _connect(options) as connection:
        response = connection.send(request)
    _check(response.error_code, response.error_message, "cannot describe quotas")
    found: list[tuple[str | None, dict[str, float]]] = []
    for entry in response.entries or ():
        names = [e.entity_name for e in entry.entity if e.entity_type == entity]
        values = {value.key: float(value.value) for value in entry.values}
        found.append((names[0] if names else None, dict(sorted(values.items()))))
    return sorted(found, key=lambda item: (item[0] is None, item[0] or ""))


# --- alter --------------------------------------------------------------------------------


@configs_app.command("alter")
def alter(
    *,
    entity_type: EntityTypeOption,
    entity_name: EntityNameOption = None,
    entity_default: EntityDefaultOption = False,
    add_config: Annotated[
        str | None,
        typer.Option(
            "--add-config",
            metavar="K=V,K2=[A,B]",
            help="Configs to set, comma-separated; a list value in square brackets.",
        ),
    ] = None,
    delete_config: Annotated[
        str | None,
        typer.Option("--delete-config", metavar="K,K2", help="Configs to remove, comma-separated."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    command_config: CommandConfigOption = None,
    properties: PropertyOption = None,
) -> None:
    """Set and delete configs as kafka-configs --alter does (IncrementalAlterConfigs,
    or AlterClientQuotas for clients and users)."""
    with reported_errors():
        kind, name = _entity(entity_type, entity_name, entity_default)
        to_set = parse_add_config(add_config or "")
        to_delete = [item.strip() for item in (delete_config or "").split(",") if item.strip()]
        if not to_set and not to_delete:
            raise usage_error("alter needs --add-config K=V[,K2=V2] and/or --delete-config K[,K2]")
        both = sorted(set(to_set) & set(to_delete))
        if both:
            raise usage_error(
                f"{', '.join(both)} both in --add-config and --delete-config; give each once"
            )
        options = ClientOptions.of(bootstrap, command_config, properties)
        if kind in QUOTA_ENTITY:
            _alter_quotas(options, QUOTA_ENTITY[kind], name, to_set, to_delete)
        elif name is None:
            _alter_broker_default(options, to_set, to_delete)
        else:
            _alter(options, kind, name, to_set, to_delete)
        console = stdout_console()
        if name is None:
            console.print(f"Completed updating default config for {kind} in the cluster.")
        else:
            console.print(f"Completed updating config for {kind[:-1]} {name}.", markup=False)


def parse_add_config(text: str) -> dict[str, str]:
    """``k=v,k2=[a,b]`` as kafka-configs parses ``--add-config``: pairs split on commas
    outside square brackets; brackets mark a list value, kept without them."""
    pairs: dict[str, str] = {}
    items: list[str] = []
    depth, current = 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise usage_error(f"--add-config has an unmatched ']' in {text!r}")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise usage_error(f"--add-config has an unclosed '[' in {text!r}")
    items.append(current)
    for item in items:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise usage_error(
                f"--add-config expects KEY=VALUE items separated by commas, got {item!r} "
                "(put a list value in square brackets: k=[a,b])"
            )
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        pairs[key.strip()] = value
    return pairs


def _alter(
    options: ClientOptions, kind: str, name: str, to_set: dict[str, str], to_delete: list[str]
) -> None:
    entries = [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        for key, value in to_set.items()
    ] + [
        ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE) for key in to_delete
    ]
    resource_type = ResourceType.TOPIC if kind == "topics" else ResourceType.BROKER
    resource = ConfigResource(resource_type, name, incremental_configs=entries)
    client = admin_client(options)
    fetch_metadata(client, options.bootstrap)
    try:
        client.incremental_alter_configs([resource])[resource].result(REQUEST_TIMEOUT_S + 5)
    except KafkaException as exc:
        raise CliError(
            f"cannot alter {_label(kind, name)}: {describe_kafka_exception(exc)}"
        ) from None


def _alter_broker_default(
    options: ClientOptions, to_set: dict[str, str], to_delete: list[str]
) -> None:
    module = codec.request_module(INCREMENTAL_ALTER_CONFIGS, 1)
    configs = tuple(
        codec.build(module.AlterableConfig, name=key, config_operation=SET, value=value)
        for key, value in to_set.items()
    ) + tuple(
        codec.build(module.AlterableConfig, name=key, config_operation=DELETE, value=None)
        for key in to_delete
    )
    resource = codec.build(
        module.AlterConfigsResource, resource_type=BROKER, resource_name="", configs=configs
    )
    request = _request(INCREMENTAL_ALTER_CONFIGS, 1, resources=(resource,), validate_only=False)
    with _connect(options) as connection:
        (result,) = connection.send(request).responses
    _check(result.error_code, result.error_message, "cannot alter the broker default")


def _alter_quotas(
    options: ClientOptions,
    entity: str,
    name: str | None,
    to_set: dict[str, str],
    to_delete: list[str],
) -> None:
    module = codec.request_module(ALTER_CLIENT_QUOTAS, 1)
    ops = []
    for key, text in to_set.items():
        try:
            value = float(text)
        except ValueError:
            raise usage_error(f"quota {key} must be a number, got {text!r}") from None
        ops.append(codec.build(module.OpData, key=key, value=value, remove=False))
    ops += [codec.build(module.OpData, key=key, value=0.0, remove=True) for key in to_delete]
    entry = codec.build(
        module.EntryData,
        entity=(codec.build(module.EntityData, entity_type=entity, entity_name=name),),
        ops=tuple(ops),
    )
    request = _request(ALTER_CLIENT_QUOTAS, 1, entries=(entry,), validate_only=False)
    with _connect(options) as connection:
        (result,) = connection.send(request).entries
    _check(result.error_code, result.error_message, f"cannot alter quotas of {entity}")


# --- plumbing -----------------------------------------------------------------------------


def _label(kind: str, name: str) -> str:
    return f"topic {name}" if kind == "topics" else f"broker {name}"


def _request(api_key: int, version: int, **fields: Any) -> Any:
    return build_request(api_key, version, **fields)


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise error_of(code, what, message)


def _connect(options: ClientOptions, broker_id: int | None = None) -> BrokerConnection:
    """A raw connection to broker ``broker_id``, or to the first live one (addresses from
    metadata), for the requests librdkafka cannot send or decodes lossily. PLAINTEXT
    only, as ``odradek transactions``."""
    every = sorted(wire_brokers(options, "configs").items())
    brokers = every
    if broker_id is not None:
        brokers = [b for b in every if b[0] == broker_id]
        if not brokers:
            known = ", ".join(str(b[0]) for b in every)
            raise CliError(f"broker {broker_id} is not in the cluster (brokers: {known})")
    if not brokers:
        raise CliError(f"no broker listed in the metadata from {options.bootstrap}")
    host, port = brokers[0][1]
    return BrokerConnection(host, port)
