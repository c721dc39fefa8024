"""``POST /v1/usage``: one UsageEvent or a batch, validated whole, produced, answered 202.

Nothing of a request is sent unless all of it is valid and every event is of the key's
tenant; a refusal (422) lists every problem with its path (``$[3].usage.input_tokens``).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from tokenline.sink.api.auth import ingest_key, state_of
from tokenline.sink.api.ingest import IngestFailed
from tokenline.sink.api.keys import ApiKey
from tokenline.sink.api.models import Accepted, ErrorOut, Invalid

__all__ = ["router"]

router = APIRouter()

_EVENT_DOC = (
    "A UsageEvent (tokenline.UsageEvent.avsc) in JSON, or an array of them. event_id, "
    "producer_id and producer_seq may be left out; the API then makes them."
)


@router.post(
    "/v1/usage",
    status_code=202,
    response_model=Accepted,
    responses={
        400: {"model": ErrorOut, "description": "A body that is not JSON."},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut, "description": "No ingest scope, or another tenant's event."},
        422: {"model": Invalid, "description": "Every problem of the request."},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut, "description": "Kafka did not acknowledge in time; retry."},
    },
)
def post_usage(
    request: Request,
    key: Annotated[ApiKey, Depends(ingest_key)],
    body: Annotated[dict[str, Any] | list[dict[str, Any]], Body(description=_EVENT_DOC)],
) -> Accepted:
    """Send usage over HTTP where Kafka is out of reach; idempotent by ``event_id``."""
    state = state_of(request)
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > state.settings.api_max_batch:
        return JSONResponse(  # type: ignore[return-value]
            {
                "detail": "nothing was sent",
                "problems": [
                    f"$: send 1 to {state.settings.api_max_batch} events, not {len(items)}"
                ],
            },
            422,
        )
    records, problems = [], []
    for index, item in enumerate(items):
        path = f"$[{index}]" if isinstance(body, list) else "$"
        record, found = state.converter.convert(item, path)
        problems.extend(found)
        if record is not None:
            if record["tenant_id"] != key.tenant_id:
                raise HTTPException(403, f"{path}.tenant_id: this key may not ingest that tenant")
            records.append(record)
    if problems:
        return JSONResponse(  # type: ignore[return-value]
            {"detail": f"{len(problems)} problems; nothing was sent", "problems": problems}, 422
        )
    try:
        state.sender().send(records, state.settings.api_ingest_timeout_ms / 1000)
    except IngestFailed as exc:
        raise HTTPException(503, str(exc)) from exc
    return Accepted(accepted=len(records), event_ids=[str(r["event_id"]) for r in records])
