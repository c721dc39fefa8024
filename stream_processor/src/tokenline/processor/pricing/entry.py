"""One effective-dated price of one model: per-token prices per usage bucket.

Money is ``Decimal`` only. Prices enter as strings (JSON, YAML) or through
:func:`to_decimal`, which turns a float into its shortest ``repr`` string first, so
``0.003`` becomes ``Decimal("0.003")`` and never ``Decimal(0.003000000000000000062...)``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenline.processor.pricing.errors import PriceTableError

__all__ = [
    "PRICE_FIELDS",
    "BucketPrices",
    "LongContextTier",
    "PriceEntry",
    "batch_prices",
    "canonical_decimal",
    "to_decimal",
]

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
_GLOB_CHARS = frozenset("*?[")


def to_decimal(value: object) -> Decimal:
    """Convert a price to ``Decimal`` exactly as written: str as is, float via ``repr``."""
    if isinstance(value, bool):
        msg = f"not a price: {value!r}"
        raise TypeError(msg)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            msg = f"not a decimal number: {value!r}"
            raise ValueError(msg) from exc
    else:
        msg = f"not a price: {value!r}"
        raise TypeError(msg)
    if not result.is_finite():
        msg = f"not a finite number: {value!r}"
        raise ValueError(msg)
    return result


def canonical_decimal(value: Decimal) -> str:
    """Canonical plain-notation text of a Decimal (``1E-5`` and ``0.000010`` → ``0.00001``).

    A price's identity: equal prices give equal text. Reports keep a sum's NUMERIC scale
    instead (``tokenline.sink.report.values.decimal_text``), so the two are named apart.
    """
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, slots=True)
class BucketPrices:
    """Per-token USD prices for each disjoint usage bucket.

    ``reasoning`` is ``None`` when reasoning tokens are billed at the ``output`` rate.
    A provider with a single cache-write price has ``cache_write_5m == cache_write_1h``.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal | None = None

    @property
    def reasoning_rate(self) -> Decimal:
        """The rate reasoning tokens are billed at."""
        return self.output if self.reasoning is None else self.reasoning

    def scaled(self, factor: Decimal) -> BucketPrices:
        """Every price multiplied by ``factor`` (for a batch discount)."""
        return BucketPrices(
            input=self.input * factor,
            output=self.output * factor,
            cache_read=self.cache_read * factor,
            cache_write_5m=self.cache_write_5m * factor,
            cache_write_1h=self.cache_write_1h * factor,
            reasoning=None if self.reasoning is None else self.reasoning * factor,
        )

    def to_dict(self) -> dict[str, str | None]:
        """Plain-text form for JSON."""
        out: dict[str, str | None] = {}
        for name in PRICE_FIELDS:
            value: Decimal | None = getattr(self, name)
            out[name] = None if value is None else canonical_decimal(value)
        return out

    @classmethod
    def from_dict(cls, data: Any, fallback: BucketPrices | None = None) -> BucketPrices:
        """Read prices; a bucket missing from ``data`` takes ``fallback``'s price."""
        if not isinstance(data, dict):
            msg = f"prices must be an object, got {data!r}"
            raise PriceTableError(msg)

        def get(name: str) -> Decimal | None:
            raw = data.get(name)
            if raw is None:
                return None if fallback is None else getattr(fallback, name)
            if not isinstance(raw, str | int):
                msg = f"price {name!r} must be a decimal string, got {raw!r}"
                raise PriceTableError(msg)
            try:
                return to_decimal(raw)
            except (TypeError, ValueError) as exc:
                raise PriceTableError(f"price {name!r}: {exc}") from exc

        values = {name: get(name) for name in PRICE_FIELDS}
        missing = [n for n in ("input", "output") if values[n] is None]
        if missing:
            msg = f"prices miss {', '.join(missing)}"
            raise PriceTableError(msg)
        input_price = values["input"]
        assert input_price is not None
        cache_read = values["cache_read"] if values["cache_read"] is not None else input_price
        write_5m = values["cache_write_5m"] if values["cache_write_5m"] is not None else input_price
        write_1h = values["cache_write_1h"] if values["cache_write_1h"] is not None else write_5m
        output = values["output"]
        assert output is not None
        return cls(input_price, output, cache_read, write_5m, write_1h, values["reasoning"])


def batch_prices(provider: str, model: str, prices: BucketPrices, factor: Decimal) -> BucketPrices:
    """The batch prices of ``prices`` where the price list gives none: a batch discount.

    Most providers discount every bucket of a batch request, cache reads and writes included
    (OpenAI Batch API: half of every token price, cached input included; Anthropic Message
    Batches, on Vertex AI too: half, the prompt-caching multipliers stacking on top). Gemini
    on Vertex AI does not stack them: "the discounts for cache and batch don't stack. The
    [...] cache hit discount takes precedence over the batch discount" (Google Cloud,
    Vertex AI, "Batch inference with Gemini"). So a Vertex AI Gemini batch request's cache
    reads keep the on-demand cache-read rate; where the model has no cache discount (its
    cache-read rate is its input rate) the cached tokens are input tokens and take the batch
    discount.
    """
    scaled = prices.scaled(factor)
    if _cache_discount_precedes_batch(provider, model) and prices.cache_read < prices.input:
        return replace(scaled, cache_read=prices.cache_read)
    return scaled


def _cache_discount_precedes_batch(provider: str, model: str) -> bool:
    return provider == "vertex_ai" and model.startswith("gemini")


@dataclass(frozen=True, slots=True)
class LongContextTier:
    """Prices that replace the base prices for a whole request whose prompt is long.

    The tier applies when the request's *prompt tokens* are strictly greater than
    ``threshold_tokens``, where prompt tokens = input + cache_read + cache_write (every
    input-side bucket; reasoning and output never count). This is how Anthropic (the
    200K-token long-context price, cache reads and writes included) and Gemini
    (``promptTokenCount``, which includes cached content) decide it. When the tier applies,
    every bucket of the request is billed at the tier's price.
    """

    threshold_tokens: int
    prices: BucketPrices
    batch: BucketPrices | None = None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The prices of one model at one provider from ``valid_from`` on.

    An entry applies from ``valid_from`` until the next entry's ``valid_from`` for the same
    provider and model. ``model`` is an exact canonical id, or a glob pattern (``*``, ``?``,
    ``[...]``) that applies when no exact entry exists. Batch requests use ``batch`` prices
    when given, else the base prices times ``batch_factor``, else the base prices.

    ``region`` scopes the entry to one place of processing: an AWS region
    (``eu-central-1``) for Bedrock, a data zone (``eu``, ``us``, ``apac``, ``us-gov``,
    ``global``, ``global-standard``) for Azure. ``None`` is the model's base price.
    """

    entry_id: str
    provider: str
    model: str
    valid_from: datetime
    prices: BucketPrices
    currency: str = "USD"
    long_context: LongContextTier | None = None
    batch: BucketPrices | None = None
    batch_factor: Decimal | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if self.valid_from.tzinfo is None or self.valid_from.utcoffset() is None:
            msg = f"valid_from must be timezone-aware: {self.valid_from!r}"
            raise ValueError(msg)

    @property
    def is_pattern(self) -> bool:
        """Whether ``model`` is a glob pattern rather than an exact id."""
        return any(ch in _GLOB_CHARS for ch in self.model)

    def matches(self, model: str) -> bool:
        """Whether this entry's model (exact or pattern) covers ``model``."""
        if self.is_pattern:
            return fnmatch.fnmatchcase(model, self.model)
        return model == self.model

    @property
    def batch_rate_factor(self) -> Decimal | None:
        """What batch prices are of the base prices: ``batch_factor``, else batch input / input.

        Applied to long-context tier prices that have no batch prices of their own.
        """
        if self.batch_factor is not None:
            return self.batch_factor
        if self.batch is None or not self.prices.input:
            return None
        return self.batch.input / self.prices.input

    @staticmethod
    def make_id(provider: str, model: str, valid_from: datetime, region: str | None = None) -> str:
        """The entry id: ``provider/model@YYYY-MM-DD``, ``provider/region/model@…`` if scoped."""
        scope = f"{region}/" if region else ""
        return f"{provider}/{scope}{model}@{valid_from.astimezone(UTC).date().isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form; every price is a decimal string."""
        out: dict[str, Any] = {
            "entry_id": self.entry_id,
            "provider": self.provider,
            "model": self.model,
            "valid_from": self.valid_from.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "currency": self.currency,
            "prices": self.prices.to_dict(),
        }
        if self.long_context is not None:
            tier: dict[str, Any] = {
                "threshold_tokens": self.long_context.threshold_tokens,
                "prices": self.long_context.prices.to_dict(),
            }
            if self.long_context.batch is not None:
                tier["batch"] = self.long_context.batch.to_dict()
            out["long_context"] = tier
        if self.batch is not None:
            out["batch"] = self.batch.to_dict()
        if self.batch_factor is not None:
            out["batch_factor"] = canonical_decimal(self.batch_factor)
        if self.region is not None:
            out["region"] = self.region
        return out

    @classmethod
    def from_dict(cls, data: Any) -> PriceEntry:
        """Read the JSON form written by :meth:`to_dict`."""
        if not isinstance(data, dict):
            msg = f"an entry must be an object, got {data!r}"
            raise PriceTableError(msg)
        try:
            provider = str(data["provider"])
            model = str(data["model"])
            valid_from = datetime.fromisoformat(str(data["valid_from"]))
            prices = BucketPrices.from_dict(data["prices"])
            tier = None
            if data.get("long_context") is not None:
                raw_tier = data["long_context"]
                tier_prices = BucketPrices.from_dict(raw_tier["prices"], prices)
                tier_batch = raw_tier.get("batch")
                tier = LongContextTier(
                    threshold_tokens=int(raw_tier["threshold_tokens"]),
                    prices=tier_prices,
                    batch=None if tier_batch is None else BucketPrices.from_dict(tier_batch),
                )
            batch = None if data.get("batch") is None else BucketPrices.from_dict(data["batch"])
            factor = data.get("batch_factor")
            region = None if data.get("region") is None else str(data["region"])
            entry_id = data.get("entry_id") or cls.make_id(provider, model, valid_from, region)
            return cls(
                entry_id=str(entry_id),
                provider=provider,
                model=model,
                valid_from=valid_from,
                prices=prices,
                currency=str(data.get("currency", "USD")),
                long_context=tier,
                batch=batch,
                batch_factor=None if factor is None else to_decimal(str(factor)),
                region=region,
            )
        except PriceTableError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"bad price entry {data.get('entry_id') or data.get('model')!r}: {exc!r}"
            raise PriceTableError(msg) from exc
