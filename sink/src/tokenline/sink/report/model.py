"""A report's values: exact totals per group and currency, and the derived averages.

Counts are ``int`` and amounts ``Decimal`` as PostgreSQL summed them; totals are sums of the
group rows, so they are exact too. Only the averages divide, and they say how they round.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from tokenline.sink.report.selection import ReportSpec

__all__ = ["COST_QUANTUM", "GroupKey", "Latency", "Report", "ReportRow", "Totals"]

COST_QUANTUM = Decimal("0.000000000001")  # the scale of NUMERIC(38,12)
GroupKey = str | date | None


@dataclass(frozen=True)
class Totals:
    """Sums over a set of calls in one currency."""

    requests: int = 0
    failures: int = 0
    unpriced_count: int = 0
    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_input: Decimal = Decimal(0)
    cost_cache_read: Decimal = Decimal(0)
    cost_cache_write: Decimal = Decimal(0)
    cost_output: Decimal = Decimal(0)
    cost_reasoning: Decimal = Decimal(0)
    cost_total: Decimal = Decimal(0)
    latency_ms_sum: int = 0
    latency_ms_max: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Totals:
        """Build totals from a query row with the measure columns."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def __add__(self, other: Totals) -> Totals:
        values: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "latency_ms_max":
                present = [v for v in (mine, theirs) if v is not None]
                values[f.name] = max(present) if present else None
            else:
                values[f.name] = mine + theirs
        return Totals(**values)

    @property
    def succeeded(self) -> int:
        """Successful calls."""
        return self.requests - self.failures

    @property
    def priced_requests(self) -> int:
        """Calls that have a cost (the unpriced ones have none, not zero)."""
        return self.requests - self.unpriced_count

    @property
    def total_tokens(self) -> int:
        """All tokens; the buckets are disjoint, so this counts each token once."""
        return (
            self.input_tokens
            + self.cache_read_input_tokens
            + self.cache_write_input_tokens
            + self.output_tokens
            + self.reasoning_tokens
        )

    @property
    def avg_cost_per_request(self) -> Decimal | None:
        """Cost over priced calls, rounded half-even to 12 places; None without priced calls.

        Unpriced calls are left out: they have no cost yet, and counting them as zero would
        understate the average.
        """
        if self.priced_requests == 0:
            return None
        average = self.cost_total / self.priced_requests
        return average.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)

    @property
    def avg_latency_ms(self) -> int | None:
        """Mean latency over all calls in whole milliseconds (half-even); None without calls."""
        if self.requests == 0:
            return None
        mean = Decimal(self.latency_ms_sum) / self.requests
        return int(mean.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class Latency:
    """Latency and time-to-first-token figures of a set of calls, in whole milliseconds.

    Percentiles are values some call had (``percentile_disc``); None without calls (or, for
    time to first token, without a call that reported one).
    """

    requests: int = 0
    latency_ms_p50: int | None = None
    latency_ms_p95: int | None = None
    ttft_count: int = 0
    ttft_ms_sum: int | None = None
    ttft_ms_p50: int | None = None
    ttft_ms_p95: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Latency:
        """Build from a :func:`~tokenline.sink.report.queries.latency_query` row."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    @property
    def avg_ttft_ms(self) -> int | None:
        """Mean time to first token over the calls that reported one (half-even)."""
        if not self.ttft_count or self.ttft_ms_sum is None:
            return None
        mean = Decimal(self.ttft_ms_sum) / self.ttft_count
        return int(mean.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class ReportRow:
    """One group: its dimension values (in ``group_by`` order), currency and totals."""

    keys: tuple[GroupKey, ...]
    currency: str
    totals: Totals


@dataclass(frozen=True)
class Report:
    """The rows of a report, the relation they were read from, and a total per currency."""

    spec: ReportSpec
    source: str
    rows: tuple[ReportRow, ...]

    @property
    def totals(self) -> dict[str, Totals]:
        """Return the sum of the rows per currency (amounts are never added across them)."""
        found: dict[str, Totals] = {}
        for row in self.rows:
            found[row.currency] = found.get(row.currency, Totals()) + row.totals
        return found


def sum_totals(items: Iterable[Totals]) -> Totals:
    """Return the sum of ``items`` (zero totals for none)."""
    result = Totals()
    for item in items:
        result += item
    return result


def keys_of(row: dict[str, Any], group_by: Sequence[str]) -> tuple[GroupKey, ...]:
    """Return a query row's dimension values in ``group_by`` order."""
    return tuple(row[name] for name in group_by)
