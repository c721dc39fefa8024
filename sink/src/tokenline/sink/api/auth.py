"""Who is asking: the bearer key, its rate limit, and its right to a tenant's data.

The key's row is read on every request (so a revoked key is refused at once), on the event
loop from the API's asyncio pool (no worker thread per request); the scope checks are plain.
Every route that names a tenant in its path depends on :func:`tenant_reader`, so a key of
another tenant is refused before any query runs; a test enumerates the routes to keep it so.
"""

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tokenline.sink.api.keys import ApiKey
from tokenline.sink.api.state import ApiState

__all__ = ["admin_key", "current_key", "ingest_key", "state_of", "tenant_reader"]

_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key, `Authorization: Bearer tlk_...` (`tokenline api keys create`).",
)
TENANT_PATH = Path(
    min_length=1, max_length=128, pattern=r"^[^\x00/]+$", description="The tenant's id."
)


def state_of(request: Request) -> ApiState:
    """The process's shared state."""
    state: ApiState = request.app.state.api
    return state


async def current_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> ApiKey:
    """The active key of the request, within its rate limit (401 without one, 429 over it)."""
    state = state_of(request)
    if credentials is None:
        raise HTTPException(401, "an API key is required", {"WWW-Authenticate": "Bearer"})
    async with state.key_pool.connection() as conn:
        key = await state.keys.authenticate(conn, credentials.credentials)
    if key is None:
        raise HTTPException(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    limit = key.rate_limit_per_minute or state.settings.api_rate_limit_per_minute
    wait_s = state.limiter.take(key.key_id, limit, time.monotonic())
    if wait_s is not None:
        retry = str(max(1, int(wait_s + 0.999)))
        raise HTTPException(429, f"rate limit of {limit} requests a minute", {"Retry-After": retry})
    return key


async def tenant_reader(
    tenant_id: Annotated[str, TENANT_PATH], key: Annotated[ApiKey, Depends(current_key)]
) -> str:
    """The path's tenant, when the key may read it (403 otherwise)."""
    if not key.may("read", tenant_id):
        raise HTTPException(403, "this key may not read this tenant")
    return tenant_id


async def ingest_key(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
    """A key with the ingest scope (403 otherwise); each event's tenant is checked too."""
    if "ingest" not in key.scopes:
        raise HTTPException(403, "this key may not ingest")
    return key


async def admin_key(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
    """An administration key (403 otherwise)."""
    if not key.admin:
        raise HTTPException(403, "an admin key is required")
    return key
