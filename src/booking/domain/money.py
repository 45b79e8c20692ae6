"""Money as integer minor units with a currency; conversion to the platform's rupee floats."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from booking.domain.errors import InvalidMoney

DEFAULT_CURRENCY = "INR"
_MINOR_PER_MAJOR = 100
# Whole floats up to here are exact integers, so a whole rupee amount needs no Decimal.
_WHOLE_FLOAT_MAX = float(2**53)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in minor units (paise for INR); never a float inside the service."""

    minor: int
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise InvalidMoney(f"minor units must be an integer, got {self.minor!r}")
        if self.minor < 0:
            raise InvalidMoney("amounts are never negative")

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(0, currency)

    @classmethod
    def from_major(
        cls, value: float | int | str | Decimal, currency: str = DEFAULT_CURRENCY
    ) -> Money:
        """Convert a wire amount (rupees as a JSON number) to minor units, rounding half up."""
        if type(value) is float and value.is_integer() and 0 <= value <= _WHOLE_FLOAT_MAX:
            return cls(int(value) * _MINOR_PER_MAJOR, currency)  # whole rupees: exact as is
        try:
            dec = Decimal(str(value))
        except InvalidOperation as exc:
            raise InvalidMoney(f"not an amount: {value!r}") from exc
        if not dec.is_finite():
            raise InvalidMoney(f"not a finite amount: {value!r}")
        minor = (dec * _MINOR_PER_MAJOR).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return cls(int(minor), currency)

    def to_major(self) -> float:
        """The wire form: a JSON number in major units (the platform's Java Double): the double
        nearest the exact quotient, which Python's int division gives directly."""
        return self.minor / _MINOR_PER_MAJOR

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise InvalidMoney(f"cannot add {other.currency} to {self.currency}")
        return Money(self.minor + other.minor, self.currency)


def total(amounts: list[Money], currency: str = DEFAULT_CURRENCY) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
