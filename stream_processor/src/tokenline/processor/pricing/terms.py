"""Tenant terms: a discount or markup on every bucket, effective-dated like prices.

A :class:`TenantAdjustment` is one term: a percent (negative is a discount) valid over
``[effective_from, effective_to)``; ``None`` bounds are open (from the beginning, for ever).
:class:`TenantTerms` is a tenant's list of terms, ordered and never overlapping; as with
prices, a term without ``effective_to`` lasts until the next one starts. An event gets the
term valid at its ``occurred_at``, or none (list price) before the first or in a gap. A single
``TenantAdjustment`` is itself a tenant's terms.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext
from typing import TYPE_CHECKING, Any, TypeAlias

from tokenline.processor.pricing.entry import canonical_decimal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "TenantAdjustment",
    "TenantTerms",
    "Terms",
    "term_problems",
    "terms_document",
    "terms_from_document",
]

_EXACT = Context(prec=80)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class TenantAdjustment:
    """A tenant's discount (negative ``percent``) or markup (positive) on every bucket.

    Valid over ``[effective_from, effective_to)``; a ``None`` bound is open.
    """

    percent: Decimal
    effective_from: datetime | None = None
    effective_to: datetime | None = None

    def __post_init__(self) -> None:
        for bound in (self.effective_from, self.effective_to):
            if bound is not None and bound.utcoffset() is None:
                msg = f"a term's bounds must be timezone-aware, got {bound.isoformat()}"
                raise ValueError(msg)

    @classmethod
    def discount(
        cls,
        percent: Decimal,
        effective_from: datetime | None = None,
        effective_to: datetime | None = None,
    ) -> TenantAdjustment:
        """A discount of ``percent`` percent."""
        return cls(-percent, effective_from, effective_to)

    @classmethod
    def markup(
        cls,
        percent: Decimal,
        effective_from: datetime | None = None,
        effective_to: datetime | None = None,
    ) -> TenantAdjustment:
        """A markup of ``percent`` percent."""
        return cls(percent, effective_from, effective_to)

    @property
    def factor(self) -> Decimal:
        """The multiplier: ``1 + percent / 100``."""
        with localcontext(_EXACT):
            return 1 + self.percent / _HUNDRED

    def applies_at(self, at: datetime) -> bool:
        """Whether ``at`` is within ``[effective_from, effective_to)``."""
        if self.effective_from is not None and at < self.effective_from:
            return False
        return self.effective_to is None or at < self.effective_to

    def at(self, at: datetime) -> TenantAdjustment | None:
        """This term when it applies at ``at`` (the one-term form of :meth:`TenantTerms.at`)."""
        return self if self.applies_at(at) else None

    def to_dict(self) -> dict[str, str | None]:
        """The canonical document form (percent as plain decimal text, times ISO 8601)."""
        return {
            "percent": canonical_decimal(self.percent),
            "effective_from": _iso(self.effective_from),
            "effective_to": _iso(self.effective_to),
        }


@dataclass(frozen=True, slots=True)
class TenantTerms:
    """A tenant's terms in time order; none overlaps the next (see :func:`TenantTerms.of`)."""

    terms: tuple[TenantAdjustment, ...]

    @classmethod
    def of(cls, *terms: TenantAdjustment) -> TenantTerms:
        """Terms in time order, each without ``effective_to`` ending where the next starts.

        Raises ``ValueError`` naming each overlap, shared start or empty interval.
        """
        problems = term_problems(terms)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(_chained(terms))

    def at(self, at: datetime) -> TenantAdjustment | None:
        """The term valid at ``at``, or ``None`` (no adjustment then)."""
        for term in self.terms:
            if term.applies_at(at):
                return term
        return None


Terms: TypeAlias = TenantAdjustment | TenantTerms
"""A tenant's terms: one (undated or dated) term, or a list of them."""


def term_problems(terms: Sequence[TenantAdjustment]) -> list[str]:
    """Empty intervals and overlapping terms, named by their index in ``terms``."""
    problems = []
    for index, term in enumerate(terms):
        start, end = term.effective_from, term.effective_to
        if start is not None and end is not None and end <= start:
            problems.append(f"term {index}: effective_to must be after effective_from")
    order = sorted(range(len(terms)), key=lambda i: _start_key(terms[i]))
    for first, second in itertools.pairwise(order):
        low, high = sorted((first, second))
        first_end = terms[first].effective_to
        first_start, second_start = terms[first].effective_from, terms[second].effective_from
        if second_start is None or first_start == second_start:
            problems.append(f"terms {low} and {high} start at the same time")
        elif first_end is not None and second_start < first_end:
            problems.append(f"terms {low} and {high} overlap")
    return problems


def _chained(terms: Sequence[TenantAdjustment]) -> tuple[TenantAdjustment, ...]:
    """Sorted by start; a term without ``effective_to`` ends where the next one starts."""
    ordered = sorted(terms, key=_start_key)
    out = []
    for term, following in zip(ordered, [*ordered[1:], None], strict=True):
        if term.effective_to is None and following is not None:
            out.append(replace(term, effective_to=following.effective_from))
        else:
            out.append(term)
    return tuple(out)


def _start_key(term: TenantAdjustment) -> tuple[int, datetime | None]:
    return (0, None) if term.effective_from is None else (1, term.effective_from)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def terms_document(terms: Terms) -> list[dict[str, str | None]]:
    """Canonical document form of a tenant's terms: a list of term dicts in time order."""
    listed = (terms,) if isinstance(terms, TenantAdjustment) else terms.terms
    return [t.to_dict() for t in listed]


def terms_from_document(value: Any) -> Terms:
    """Read :func:`terms_document`'s form, or the older bare percent (an undated term).

    One term reads back as a :class:`TenantAdjustment`, more as :class:`TenantTerms`.

    Raises ``ValueError`` or ``TypeError`` on anything else.
    """
    if isinstance(value, str | int) and not isinstance(value, bool):
        return TenantAdjustment(_percent(value))
    if not isinstance(value, list):
        msg = f"expected a percent or a list of terms, got {type(value).__name__}"
        raise TypeError(msg)
    terms = []
    for item in value:
        if not isinstance(item, dict):
            msg = f"a term must be an object, got {type(item).__name__}"
            raise TypeError(msg)
        terms.append(
            TenantAdjustment(
                _percent(item["percent"]),
                _parse_time(item.get("effective_from")),
                _parse_time(item.get("effective_to")),
            )
        )
    if len(terms) == 1:
        return terms[0]
    return TenantTerms.of(*terms)


def _percent(value: Any) -> Decimal:
    try:
        percent = Decimal(str(value))
    except ArithmeticError as exc:
        msg = f"not a percent: {value!r}"
        raise ValueError(msg) from exc
    if not percent.is_finite() or percent < -100:
        msg = f"not a percent: {value!r}"
        raise ValueError(msg)
    return percent


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        msg = f"time without a UTC offset: {value!r}"
        raise ValueError(msg)
    return parsed
