"""Exact cost arithmetic in scaled integers: the same figures as the Decimal definition, faster.

A bucket's cost is ``tokens * price * (1 + percent / 100)`` quantized to 12 places with
ROUND_HALF_EVEN (:func:`~tokenline.processor.pricing.engine.compute_cost` is the definition,
in ``Decimal``). Here each per-token price is an integer count of ``10**-places`` USD
(:class:`ScaledPrices`, ``places`` the most decimal places any of the prices has, so every
price is represented exactly: the shipped snapshot's prices have at most 13) and a tenant's
factor is the exact fraction ``numerator / 10**places`` (:class:`ScaledFactor`). Token counts
multiply them as ints; the one division, by a power of ten, rounds half to even once per
bucket, and ``Decimal`` appears only in the result.

The integer path covers what the Decimal definition computes exactly (at its 80 digits):
non-negative prices under $1M per token with at most 30 significant digits and 30 decimal
places, a factor that is not negative with at most 20 digits and 32 places, and
non-negative token counts of a 64-bit long (every valid event). Outside that,
:meth:`ScaledPrices.of`, :meth:`ScaledFactor.of` and :func:`scaled_cost` return ``None`` and
the caller uses the Decimal definition, so no price is ever rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from tokenline.processor.pricing.entry import BucketPrices
    from tokenline.schemas import Cost, Usage

__all__ = ["ScaledFactor", "ScaledPrices", "scaled_cost"]

_MAX_PRICE_DIGITS = 30
_MAX_PRICE_ADJUSTED = 5  # a price's adjusted exponent: under 10**6 USD per token
_MAX_FACTOR = 10**20
_MAX_PLACES = 30
_QUANTUM_PLACES = 12
_POW10 = tuple(10**i for i in range(2 * _MAX_PLACES + 3))
# Exact for every coefficient the integer path makes (at most ~60 digits).
_EXACT = Context(prec=80)
_QUANTUM = Decimal("1E-12")
_ZERO = Decimal("0E-12")


def _digits(value: Decimal) -> tuple[int, int] | None:
    """``value`` as ``(coefficient, exponent)`` when it is finite, unsigned and in range."""
    if not value.is_finite() or value.is_signed():
        return None
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > _MAX_PRICE_DIGITS or (any(digits) and value.adjusted() > _MAX_PRICE_ADJUSTED):
        return None
    return int("".join(map(str, digits))), exponent


@dataclass(frozen=True, slots=True)
class ScaledPrices:
    """One set of bucket prices as integers of ``10**-places`` USD per token."""

    input: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output: int
    reasoning: int
    places: int

    @classmethod
    def of(cls, prices: BucketPrices) -> ScaledPrices | None:
        """The exact integer form of ``prices``, or ``None`` outside the integer path's range."""
        values = (
            prices.input,
            prices.cache_read,
            prices.cache_write_5m,
            prices.cache_write_1h,
            prices.output,
            prices.reasoning_rate,
        )
        parts = [_digits(value) for value in values]
        if any(part is None for part in parts):
            return None
        exact = [part for part in parts if part is not None]
        places = max(0, *(-exponent for _, exponent in exact))
        if places > _MAX_PLACES:
            return None
        inp, read, write_5m, write_1h, output, reasoning = (
            coefficient * 10 ** (exponent + places) for coefficient, exponent in exact
        )
        return cls(inp, read, write_5m, write_1h, output, reasoning, places)


@dataclass(frozen=True, slots=True)
class ScaledFactor:
    """A tenant's factor ``1 + percent / 100`` as the exact ``numerator / 10**places``."""

    numerator: int
    places: int

    ONE: ClassVar[ScaledFactor]

    @classmethod
    def of(cls, percent: Decimal) -> ScaledFactor | None:
        """The factor of a ``percent`` markup (negative: discount), or ``None`` out of range."""
        value = Decimal(percent)
        if not value.is_finite():
            return None
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        if len(digits) > _MAX_PRICE_DIGITS:
            return None
        places = max(0, -exponent)
        if places > _MAX_PLACES or exponent > _MAX_PLACES:
            return None
        scaled = int("".join(map(str, digits))) * 10 ** (exponent + places)
        numerator = 10 ** (places + 2) + (-scaled if sign else scaled)
        if not 0 <= numerator < _MAX_FACTOR:
            return None
        return cls(numerator, places + 2)


ScaledFactor.ONE = ScaledFactor(1, 0)


def _rounded(value: int, divisor: int) -> int:
    """``value / divisor`` (``value >= 0``) rounded to an integer, half to even."""
    quotient, remainder = divmod(value, divisor)
    twice = remainder << 1
    if twice > divisor or (twice == divisor and quotient & 1):
        return quotient + 1
    return quotient


def _money(quanta: int) -> Decimal:
    """``quanta`` units of 1E-12 as the Decimal ``quantize`` gives (exponent -12)."""
    return _EXACT.multiply(Decimal(quanta), _QUANTUM) if quanta else _ZERO


def scaled_cost(prices: ScaledPrices, usage: Usage, factor: ScaledFactor) -> Cost | None:
    """The cost of ``usage`` at ``prices`` times ``factor``: buckets and total, 12 places.

    The same split of cache writes as the Decimal definition (5-minute rate for what the
    split does not account for). ``None`` when a count is negative (not a valid event).
    """
    write_total = usage["cache_write_input_tokens"]
    write_5m = usage["cache_write_5m_input_tokens"]
    split_1h = usage["cache_write_1h_input_tokens"] or 0
    split_5m = write_total - split_1h if write_5m is None else write_5m
    unsplit = write_total - split_5m - split_1h
    at_5m = split_5m + unsplit if unsplit > 0 else split_5m
    input_tokens = usage["input_tokens"]
    read = usage["cache_read_input_tokens"]
    output = usage["output_tokens"]
    reasoning = usage["reasoning_tokens"]
    if (input_tokens | read | at_5m | split_1h | output | reasoning) < 0:
        return None
    shift = prices.places + factor.places - _QUANTUM_PLACES
    multiplier = factor.numerator
    if shift > 0:
        divisor = _POW10[shift]
    else:
        divisor = 1
        multiplier *= _POW10[-shift]
    input_cost = input_tokens * prices.input * multiplier
    read_cost = read * prices.cache_read * multiplier
    write_cost = (at_5m * prices.cache_write_5m + split_1h * prices.cache_write_1h) * multiplier
    output_cost = output * prices.output * multiplier
    reasoning_cost = reasoning * prices.reasoning * multiplier
    if divisor != 1:  # zero buckets (most cache and reasoning buckets) need no rounding
        input_cost = _rounded(input_cost, divisor) if input_cost else 0
        read_cost = _rounded(read_cost, divisor) if read_cost else 0
        write_cost = _rounded(write_cost, divisor) if write_cost else 0
        output_cost = _rounded(output_cost, divisor) if output_cost else 0
        reasoning_cost = _rounded(reasoning_cost, divisor) if reasoning_cost else 0
    total = input_cost + read_cost + write_cost + output_cost + reasoning_cost
    return {
        "input": _money(input_cost),
        "cache_read": _money(read_cost),
        "cache_write": _money(write_cost),
        "output": _money(output_cost),
        "reasoning": _money(reasoning_cost),
        "total": _money(total),
    }
