"""How every Tokenline part authenticates to Kafka: one description, each client's dialect.

The SDK (confluent-kafka), the processor (Faust and aiokafka, plus confluent-kafka for admin
and replay) and the sink (confluent-kafka) read the same ``TOKENLINE_SECURITY_PROTOCOL``,
``TOKENLINE_SASL_MECHANISM``, ``TOKENLINE_SASL_USERNAME``, ``TOKENLINE_SASL_PASSWORD`` and
``TOKENLINE_SSL_CA_LOCATION`` settings and turn them into a :class:`KafkaSecurity`; it gives
the librdkafka properties, the aiokafka keyword arguments (which Faust takes too, see
``processor/app.py``) or the problems of the same connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "KafkaSecurity",
    "KafkaSecuritySettings",
    "KafkaSettings",
    "Mechanism",
    "SecurityProtocol",
    "librdkafka_config",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecuritySettings(Protocol):
    """How a part's settings declare Kafka's security (the ``TOKENLINE_*`` names)."""

    security_protocol: SecurityProtocol
    sasl_mechanism: Mechanism | None
    sasl_username: str | None
    sasl_password: Any  # pydantic SecretStr or None: read with get_secret_value()
    ssl_ca_location: str | None


class KafkaSettings(KafkaSecuritySettings, Protocol):
    """What a part's settings declare to reach Kafka: where it is, its security, the rest."""

    bootstrap_servers: str
    kafka_config: dict[str, str]


def librdkafka_config(settings: KafkaSettings) -> dict[str, Any]:
    """Bootstrap servers, security and the pass-through properties, for librdkafka."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        **KafkaSecurity.of(settings).librdkafka(),
        **settings.kafka_config,
    }


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The security of a Kafka connection (PLAINTEXT, the default, needs nothing else)."""

    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: Mechanism | None = None
    username: str | None = None
    password: str | None = None
    ca_location: str | None = None
    """A CA bundle to verify the brokers with; None: the system's trust store."""

    @classmethod
    def of(cls, settings: KafkaSecuritySettings) -> KafkaSecurity:
        """The security a part's settings describe."""
        password = settings.sasl_password
        return cls(
            protocol=settings.security_protocol,
            mechanism=settings.sasl_mechanism,
            username=settings.sasl_username,
            password=password.get_secret_value() if password is not None else None,
            ca_location=settings.ssl_ca_location,
        )

    @property
    def sasl(self) -> bool:
        """Whether the connection authenticates with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.protocol.endswith("SSL")

    def problems(self) -> list[str]:
        """What is missing or contradictory, one line each (empty when usable)."""
        found: list[str] = []
        if self.sasl:
            if not self.username:
                found.append(f"sasl_username: required with security_protocol {self.protocol}")
            if not self.password:
                found.append(f"sasl_password: required with security_protocol {self.protocol}")
        elif self.mechanism or self.username or self.password:
            found.append(
                f"sasl_*: given, but security_protocol {self.protocol} does not use SASL "
                "(SASL_PLAINTEXT or SASL_SSL does)"
            )
        if self.ca_location and not self.tls:
            found.append(
                f"ssl_ca_location: given, but security_protocol {self.protocol} is not TLS"
            )
        return found

    def librdkafka(self) -> dict[str, str]:
        """The librdkafka properties (confluent-kafka clients)."""
        config: dict[str, str] = {"security.protocol": self.protocol}
        if self.sasl:
            config["sasl.mechanism"] = self.mechanism or "PLAIN"
            config["sasl.username"] = self.username or ""
            config["sasl.password"] = self.password or ""
        if self.ca_location:
            config["ssl.ca.location"] = self.ca_location
        return config

    def aiokafka(self) -> dict[str, Any]:
        """The keyword arguments of aiokafka's clients."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            kwargs["sasl_mechanism"] = self.mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def faust(self) -> Any:
        """Faust's ``broker_credentials`` (it passes them to aiokafka); None for PLAINTEXT.

        Faust is imported here only: the processor, the one part that runs it, calls this.
        """
        import faust

        if self.sasl:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.mechanism or "PLAIN",
                ssl_context=self.ssl_context() if self.tls else None,
            )
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def ssl_context(self) -> Any:
        """A verifying TLS context with the configured CA (or the system's)."""
        import ssl

        return ssl.create_default_context(cafile=self.ca_location)
