"""How a part's ``TOKENLINE_*`` settings are read: every problem found in one pass.

pydantic reports every invalid field at once, but stops at the first value it cannot even
parse (bad JSON in ``TOKENLINE_KAFKA_CONFIG`` is a ``SettingsError``, not a validation error),
and a model validator or a file check runs only once the fields are valid. :func:`load`
keeps going: a field that cannot be parsed or is invalid is reported and replaced by its
default (or a placeholder), and the settings are built again, so the checks that need the
whole object run too. Each problem names the environment variable to set.
:func:`load_or_raise` raises the problems as one :class:`~tokenline.common.errors.ConfigError`.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from tokenline.common.errors import ConfigError
from tokenline.common.kafka_security import Mechanism, SecurityProtocol  # noqa: TC001 - pydantic
from tokenline.common.ops.logs import LogFormat  # noqa: TC001 - pydantic reads it

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pydantic.fields import FieldInfo
    from pydantic_settings import PydanticBaseSettingsSource

__all__ = [
    "KafkaClientSettings",
    "PartSettings",
    "ServiceSettings",
    "env_name",
    "load",
    "load_or_raise",
]

_UNPARSED: ContextVar[dict[str, str] | None] = ContextVar("tokenline_unparsed", default=None)


class _TolerantEnv(EnvSettingsSource):
    """The environment source, tolerant inside :func:`load`.

    There a value it cannot parse (bad JSON) is noted and left out (the field keeps its
    default) instead of ending the whole load.
    """

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            unparsed = _UNPARSED.get()
            if unparsed is None:
                raise
            unparsed[field_name] = str(exc)
            return None


class PartSettings(BaseSettings):
    """Base of each part's settings: :func:`load` reports unparsable values with the rest."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced below
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, with an environment source that tolerates bad JSON."""
        return init_settings, _TolerantEnv(settings_cls), dotenv_settings, file_secret_settings


class KafkaClientSettings(PartSettings):
    """Base of the settings of every part that talks to Kafka, the SDK too.

    How it authenticates, and the librdkafka properties passed through. Every part reads the
    same ``TOKENLINE_*`` names with the same defaults;
    :class:`~tokenline.common.kafka_security.KafkaSecurity` maps them to each client.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="ignore")

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    kafka_config: dict[str, str] = Field(default_factory=dict)
    """Other librdkafka properties for the confluent-kafka clients (``TOKENLINE_KAFKA_CONFIG``,
    JSON), e.g. ``{"ssl.endpoint.identification.algorithm": "none"}``."""


class ServiceSettings(KafkaClientSettings):
    """Base of the settings of the long-running services: the processor, the sink, the API.

    Kafka's security, where the brokers are (``localhost:9092`` unless told), the prefix of
    every topic name, and how the service logs.
    """

    bootstrap_servers: str = Field(default="localhost:9092", min_length=1)
    topic_prefix: str = Field(default="", pattern=r"^[\w.-]*$")
    """Put before every topic name (one Kafka cluster, several pipelines)."""
    log_level: str = Field(default="info", pattern=r"^(?i)(debug|info|warning|error|critical)$")
    log_format: LogFormat = Field(
        default="text", description="text, or json: one JSON object per line."
    )


S = TypeVar("S", bound="BaseSettings")

_UNPARSABLE = re.compile(r'error parsing value for field "(?P<field>\w+)"')
_ROUNDS = 8


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable of ``field`` (``TOKENLINE_`` + its name in capitals)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _label(cls: type[BaseSettings], field: str, cli: Mapping[str, str]) -> str:
    if field not in cls.model_fields:
        return field or "settings"
    name = env_name(cls, field)
    return f"{name} ({cli[field]})" if field in cli else name


def _default_line(cls: type[BaseSettings], cli: Mapping[str, str]) -> Callable[[str, str], str]:
    """``TOKENLINE_X (option): message``, ``TOKENLINE_X [inner.path]: ...`` inside a field."""

    def line(field: str, message: str) -> str:
        head, _, inner = field.partition(".")
        where = _label(cls, head, cli)
        return f"{where} [{inner}]: {message}" if inner else f"{where}: {message}"

    return line


def load(
    cls: type[S],
    given: Mapping[str, Any],
    *,
    placeholders: Mapping[str, Any] | None = None,
    checks: Callable[[S], list[str]] | None = None,
    cli: Mapping[str, str] | None = None,
    line: Callable[[str, str], str] | None = None,
) -> tuple[S | None, list[str]]:
    """Build ``cls`` from the environment and ``given`` (None values ignored); every problem.

    ``placeholders`` stand in for required fields that are missing or invalid, so the rest can
    still be checked; ``checks`` runs on the built settings and returns more problems; ``cli``
    names the command-line option of a field (``{"database_url": "--database-url"}``).
    ``line(field, message)`` writes a problem (by default ``TOKENLINE_X (option): message``);
    ``field`` is dotted for a problem inside a field, empty for the settings as a whole.

    Returns the settings (None when there were problems) and the problems, one line each.
    """
    cli = cli or {}
    values = {key: value for key, value in given.items() if value is not None}
    problems: list[str] = []
    unparsed: dict[str, str] = {}
    token = _UNPARSED.set(unparsed)
    try:
        say = line or _default_line(cls, cli)
        return _load(cls, values, problems, unparsed, placeholders, checks=checks, say=say)
    finally:
        _UNPARSED.reset(token)


def load_or_raise(
    cls: type[S],
    given: Mapping[str, Any],
    *,
    part: str,
    placeholders: Mapping[str, Any] | None = None,
    checks: Callable[[S], list[str]] | None = None,
    cli: Mapping[str, str] | None = None,
    line: Callable[[str, str], str] | None = None,
) -> S:
    """:func:`load`, raising every problem as one :class:`ConfigError` of ``part``."""
    settings, problems = load(
        cls, given, placeholders=placeholders, checks=checks, cli=cli, line=line
    )
    if settings is None:
        raise ConfigError(problems, part=part)
    return settings


def _load(
    cls: type[S],
    values: dict[str, Any],
    problems: list[str],
    unparsed: dict[str, str],
    placeholders: Mapping[str, Any] | None,
    *,
    checks: Callable[[S], list[str]] | None,
    say: Callable[[str, str], str],
) -> tuple[S | None, list[str]]:
    from pydantic_settings import SettingsError

    reported: set[str] = set()

    def note_unparsed() -> None:
        for field, reason in unparsed.items():
            if field not in reported:
                reported.add(field)
                problems.append(say(field, f"not valid JSON: {reason}"))

    for _ in range(_ROUNDS):
        try:
            settings = cls(**values)
        except SettingsError as exc:
            found = _UNPARSABLE.search(str(exc))
            if found is None:
                problems.append(f"settings: {exc}")
                return None, problems
            field = found["field"]
            cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            problems.append(say(field, f"not valid JSON{cause}"))
            if not _stand_in(cls, field, values, placeholders):
                return None, problems
            continue
        except ValidationError as exc:
            note_unparsed()
            fixed = False
            for err in exc.errors():
                loc = [str(part) for part in err["loc"]]
                field = loc[0] if loc else ""
                problems.append(say(".".join(loc), _message(err)))
                fixed = _stand_in(cls, field, values, placeholders) or fixed
            if not fixed:
                return None, problems
            continue
        note_unparsed()
        if checks is not None:
            problems.extend(checks(settings))
        return (None if problems else settings), problems
    return None, problems


def _message(err: Any) -> str:
    message = str(err["msg"])
    if err.get("type") == "missing":
        return "required, not set"
    return message.removeprefix("Value error, ")


def _stand_in(
    cls: type[BaseSettings],
    field: str,
    values: dict[str, Any],
    placeholders: Mapping[str, Any] | None,
) -> bool:
    """Replace ``field`` by its default or placeholder (drop an unknown one); False: neither."""
    if field not in cls.model_fields:
        return values.pop(field, None) is not None
    if placeholders and field in placeholders:
        values[field] = placeholders[field]
        return True
    info = cls.model_fields[field]
    if info.default is not PydanticUndefined:
        values[field] = info.default
        return True
    if info.default_factory is not None:
        values[field] = info.default_factory()  # type: ignore[call-arg]
        return True
    return False
