"""``GET /v1/providers/{provider}/models``: a provider's models and their prices at a date.

The prices are the ones the processor prices with (the current book on the compacted prices
topic, else its initial book), read through a :class:`PriceCatalog`. The sink does not own
pricing: the catalog comes from the ``tokenline.prices`` entry point that tokenline-processor
installs, found when first asked, so the sink never imports the processor. List prices are
no tenant's data: any active key may read them (tenant terms are not shown).
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from tokenline.sink.api.auth import current_key, state_of
from tokenline.sink.api.keys import ApiKey
from tokenline.sink.api.models import ErrorOut, Invalid
from tokenline.sink.api.plugins import call_plugin, load_plugin

__all__ = ["ENTRY_POINT_GROUP", "PriceCatalog", "find_catalog", "router"]

ENTRY_POINT_GROUP = "tokenline.prices"
Provider = Literal["openai", "azure_openai", "anthropic", "bedrock", "gemini", "vertex_ai", "other"]
_PRICE = Field(pattern=r"^\d+(\.\d+)?$", description="Per token, decimal text; never a float.")


class PriceCatalog(Protocol):
    """Where the API reads prices (``ConnectionError`` when they cannot be read)."""

    def models(self, provider: str, at: datetime) -> dict[str, Any]:
        """``{pricing_version, source, models}`` of ``provider`` in force at ``at``."""
        ...


class BucketPricesOut(BaseModel):
    """Per-token prices of each usage bucket."""

    input: str = _PRICE
    output: str = _PRICE
    cache_read: str = _PRICE
    cache_write_5m: str = _PRICE
    cache_write_1h: str = _PRICE
    reasoning: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?$",
        description="Null: reasoning tokens are billed at the output price.",
    )


class LongContextOut(BaseModel):
    """Prices for a whole request whose prompt tokens exceed ``threshold_tokens``."""

    threshold_tokens: int
    prices: BucketPricesOut
    batch: BucketPricesOut | None = None


class ModelPriceOut(BaseModel):
    """One model's (or glob pattern's) price entry in force at the date asked."""

    model: str
    region: str | None = None
    entry_id: str
    valid_from: datetime
    valid_to: datetime | None = Field(description="When the next entry takes over; null: none.")
    currency: str
    prices: BucketPricesOut
    long_context: LongContextOut | None = None
    batch: BucketPricesOut | None = None
    batch_factor: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?$")


class ModelsOut(BaseModel):
    """A provider's models at ``at``, from the price book ``pricing_version``."""

    provider: str
    at: datetime
    pricing_version: str
    source: str
    models: list[ModelPriceOut]


router = APIRouter()


def find_catalog() -> PriceCatalog | None:
    """The catalog tokenline-processor installs, or None where it is not installed."""
    found: PriceCatalog | None = load_plugin(ENTRY_POINT_GROUP, "current")
    return found


def _at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HTTPException(400, f"at: not an ISO date or time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get(
    "/v1/providers/{provider}/models",
    response_model=ModelsOut,
    responses={
        400: {"model": ErrorOut, "description": "An `at` that is not a date or time."},
        401: {"model": ErrorOut},
        422: {"model": Invalid},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut, "description": "The prices cannot be read here or now."},
    },
)
async def provider_models(
    request: Request,
    provider: Provider,
    _key: Annotated[ApiKey, Depends(current_key)],
    at: Annotated[
        str | None,
        Query(
            max_length=40,
            description="ISO date or time (UTC without an offset); default now.",
        ),
    ] = None,
) -> ModelsOut:
    """The provider's models with the price entry of each in force at ``at`` (per token)."""
    when = _at(at)
    found = await call_plugin(
        state_of(request).prices, "prices", lambda catalog: catalog.models(provider, when)
    )
    return ModelsOut(provider=provider, at=when, **found)
