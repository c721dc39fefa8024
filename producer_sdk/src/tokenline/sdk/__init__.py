"""Tokenline producer SDK: meters LLM calls and publishes one usage event per call.

::

    import openai
    from tokenline import sdk

    client = sdk.wrap(openai.OpenAI(), tenant_id="acme", project="search")
    with sdk.context(user_id="u-17", tags={"feature": "rerank"}):
        client.chat.completions.create(model="gpt-4o", messages=[...])

Settings come from keywords (``sdk.configure(...)``) or ``TOKENLINE_*`` variables. Sending
never blocks the call: events go through a background thread to Kafka, and to a bounded
disk spool while Kafka is away. Prompt and completion text are never recorded.
"""

from tokenline.sdk._api import (
    close,
    configure,
    flush,
    instrument,
    record,
    set_usage,
    stats,
    track,
    uninstrument,
    wrap,
)
from tokenline.sdk._batch import record_batch_results
from tokenline.sdk._context import context
from tokenline.sdk._settings import Settings
from tokenline.sdk._stats import Stats
from tokenline.sdk.emitters import Emitter, InMemoryEmitter, JsonLinesEmitter
from tokenline.sdk.errors import BudgetExceeded, ConfigError, TokenlineError
from tokenline.sdk.providers._supported import UnsupportedProviderVersion

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "Emitter",
    "InMemoryEmitter",
    "JsonLinesEmitter",
    "Settings",
    "Stats",
    "TokenlineError",
    "UnsupportedProviderVersion",
    "close",
    "configure",
    "context",
    "flush",
    "instrument",
    "record",
    "record_batch_results",
    "set_usage",
    "stats",
    "track",
    "uninstrument",
    "wrap",
]
