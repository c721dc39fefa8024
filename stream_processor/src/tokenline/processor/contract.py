"""The validation contract: what every field of a UsageEvent may hold before it is priced.

Avro bounds little by itself: a ``long`` read from the wire is any integer up to 70 bits, an
``int`` is not held to 32, and a ``string`` is any length of any Unicode. The database and the
business bound much more, so every field of the event has an entry here, keyed by its path in
the record (``("usage", "input_tokens")``):

* :class:`Count`: an integer in ``[low, high]``. Token buckets in ``[0,
  max_tokens_per_bucket]``; latencies and time to first token in ``[0, max_age]`` (a call
  longer than the age limit could not be accepted anyway: ``occurred_at`` is its start);
  ``http_status`` a real status, 100 to 599; ``producer_seq`` a non-negative ``bigint``.
* :class:`Text`: at most ``max_chars`` characters and nothing PostgreSQL cannot store (NUL,
  lone surrogates). Identifiers that end up in an index key (the tenant; the model names the
  rollup's primary key is made of) are short enough that the key, at 4 UTF-8 bytes a
  character, stays under the B-tree's 2,704-byte limit.
* :class:`Tags`: at most ``max_entries`` entries, keys and values each a :class:`Text`.
* :class:`Instant`: ``occurred_at`` within ``[now - max_age, now + max_future]``.
* :class:`Closed`: enums, booleans and UUIDs, which the schema itself bounds.

Relations between fields are rules of :mod:`tokenline.processor.validate` (the 5m/1h cache
write split never exceeds ``cache_write_input_tokens``; buckets against the provider's total).
A test walks the Avro schema and the migrated database and fails for a field without an entry
here or with a bound its column cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.validate import ValidationLimits

__all__ = [
    "BIGINT_MAX",
    "HTTP_STATUS",
    "Bound",
    "Closed",
    "Count",
    "FieldPath",
    "Instant",
    "Tags",
    "Text",
    "contract",
]

FieldPath = tuple[str, ...]
BIGINT_MAX = 2**63 - 1
HTTP_STATUS = (100, 599)

#: Free text: names, ids, hostnames (a DNS name has at most 253 characters).
NAME = 256
#: Identifiers in an index key: the tenant, and the model names the rollup key is built from.
TENANT = 128
MODEL = 256
ERROR_MESSAGE = 2_048
MISMATCH = 1_024
MAX_TAGS = 64
TAG_KEY = 128
TAG_VALUE = 512


@dataclass(frozen=True, slots=True)
class Count:
    """An integer field: ``low <= value <= high``."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Text:
    """A string: at most ``max_chars`` characters, none PostgreSQL refuses (NUL, surrogates).

    ``indexed``: part of an index key, so its worst-case UTF-8 size counts against the
    B-tree's limit.
    """

    max_chars: int
    indexed: bool = False


@dataclass(frozen=True, slots=True)
class Tags:
    """A map of strings: at most ``max_entries`` entries, each key and value bounded."""

    max_entries: int
    key: Text
    value: Text


@dataclass(frozen=True, slots=True)
class Instant:
    """A timestamp judged against the time the record is processed (age and future limits)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """A value the schema bounds by itself: ``kind`` is ``enum``, ``boolean`` or ``uuid``."""

    kind: str


Bound = Count | Text | Tags | Instant | Closed

_HOST_TEXT = (
    "hostname",
    "cloud",
    "region",
    "instance_id",
    "k8s_pod",
    "k8s_namespace",
    "k8s_node",
    "service_name",
    "sdk_version",
    "language",
)
_BUCKETS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def contract(limits: ValidationLimits) -> Mapping[FieldPath, Bound]:
    """Every field of a UsageEvent, by path, with what it may hold under ``limits``."""
    tokens = Count(0, limits.max_tokens_per_bucket)
    millis = Count(0, limits.max_age // timedelta(milliseconds=1))
    name = Text(NAME)
    fields: dict[FieldPath, Bound] = {
        ("event_id",): Closed("uuid"),
        ("producer_id",): Closed("uuid"),
        ("producer_seq",): Count(0, BIGINT_MAX),
        ("occurred_at",): Instant(),
        ("tenant_id",): Text(TENANT, indexed=True),
        ("project",): name,
        ("user_id",): name,
        ("session_id",): name,
        ("team",): name,
        ("tags",): Tags(MAX_TAGS, Text(TAG_KEY), Text(TAG_VALUE)),
        ("provider",): Closed("enum"),
        ("operation",): Closed("enum"),
        ("request_model",): Text(MODEL, indexed=True),
        ("response_model",): Text(MODEL, indexed=True),
        ("deployment",): Text(MODEL, indexed=True),
        ("region",): name,
        ("batch",): Closed("boolean"),
        **{("usage", bucket): tokens for bucket in _BUCKETS},
        # Each part of the split is at most the total; validate checks their sum too.
        ("usage", "cache_write_5m_input_tokens"): tokens,
        ("usage", "cache_write_1h_input_tokens"): tokens,
        ("usage", "provider_total_tokens"): Count(0, len(_BUCKETS) * limits.max_tokens_per_bucket),
        ("usage", "mismatch"): Text(MISMATCH),
        ("usage_source",): Closed("enum"),
        ("streamed",): Closed("boolean"),
        ("latency_ms",): millis,
        ("time_to_first_token_ms",): millis,
        ("success",): Closed("boolean"),
        ("error_type",): name,
        ("error_message",): Text(ERROR_MESSAGE),
        ("http_status",): Count(*HTTP_STATUS),
        ("provider_request_id",): name,
        **{("host", host_field): name for host_field in _HOST_TEXT},
    }
    return fields
