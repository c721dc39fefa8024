"""Tokenline's Avro event contract.

The ``.avsc`` files under ``avro/vN/`` are the single source of truth. This package finds
them by name, version and fingerprint (``catalog``), encodes and decodes records in Avro
single-object encoding or the Confluent wire format (``AvroCodec``), and exposes the
records' Python types (TypedDicts generated from the schemas).
"""

from tokenline.schemas._catalog import RECORD_NAMES, SchemaCatalog, ShippedSchema, catalog
from tokenline.schemas._codec import AvroCodec
from tokenline.schemas.errors import (
    DecodeError,
    EncodeError,
    RegistryError,
    SchemaError,
    SchemaMismatch,
    TruncatedMessage,
    UnknownFingerprint,
    UnknownSchemaId,
    WrongMagic,
)
from tokenline.schemas.records import (
    Attribution,
    Budget,
    BudgetAlert,
    BudgetStatus,
    Cost,
    DeadLetter,
    Host,
    Operation,
    PricedUsageEvent,
    PricingStatus,
    Provider,
    SourcePosition,
    Usage,
    UsageEvent,
    UsageRollup,
    UsageSource,
)

__all__ = [
    "RECORD_NAMES",
    "Attribution",
    "AvroCodec",
    "Budget",
    "BudgetAlert",
    "BudgetStatus",
    "Cost",
    "DeadLetter",
    "DecodeError",
    "EncodeError",
    "Host",
    "Operation",
    "PricedUsageEvent",
    "PricingStatus",
    "Provider",
    "RegistryError",
    "SchemaCatalog",
    "SchemaError",
    "SchemaMismatch",
    "ShippedSchema",
    "SourcePosition",
    "TruncatedMessage",
    "UnknownFingerprint",
    "UnknownSchemaId",
    "Usage",
    "UsageEvent",
    "UsageRollup",
    "UsageSource",
    "WrongMagic",
    "catalog",
]
