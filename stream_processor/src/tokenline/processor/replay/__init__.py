"""``tokenline replay``: re-price a time range of the raw topic and recompute its windows.

Pure parts: ``scope`` (range and read bounds), ``state`` (re-pricing with the processor's
pipeline, windows, duplicates), ``rollups`` (which windows changed), ``summary``; encoding
through the processor's ``splice``. Edges: ``kafka``, ``db`` (its own SQL on the sink's
tables), ``readers`` (one process per core), ``job`` (the order of the steps).
"""

from tokenline.processor.replay.errors import (
    DeliveryError,
    LandingTimeout,
    ReplayError,
    RetentionError,
)
from tokenline.processor.replay.job import Progress, ReplayReport, ReplayRequest, run_replay

__all__ = [
    "DeliveryError",
    "LandingTimeout",
    "Progress",
    "ReplayError",
    "ReplayReport",
    "ReplayRequest",
    "RetentionError",
    "run_replay",
]
