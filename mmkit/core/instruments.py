"""Instruments and exact conversion between decimal strings and integer ticks/lots.

Inside the core every price is an integer number of ticks and every size an integer
number of lots: exact and fast.  Conversion happens once, at the edge, and refuses any
value that is not on the grid instead of rounding it silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class GridError(ValueError):
    """A price or size that is not a whole number of ticks/lots (or not a number)."""


def _dec(text: str | int | Decimal) -> Decimal:
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except (InvalidOperation, ValueError) as exc:
        raise GridError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise GridError(f"not a finite number: {text!r}")
    return value


def to_units(text: str | int | Decimal, step: Decimal) -> int:
    """Exact ``text / step`` as an int; raise ``GridError`` if it is not integral."""
    q = _dec(text) / step
    i = int(q)
    if q != i:
        raise GridError(f"{text} is not a multiple of {step}")
    return i


def from_units(units: int, step: Decimal) -> str:
    """``units * step`` as a plain decimal string with the step's number of decimals."""
    exp = step.as_tuple().exponent
    places = -exp if isinstance(exp, int) and exp < 0 else 0
    value = Decimal(units) * step
    return f"{value:.{places}f}"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract.

    ``tick_size``/``lot_size`` are exact decimals; ``contract_multiplier`` is the quote
    (linear) or USD (inverse) value of one contract; ``inverse`` contracts are sized in
    contracts and settle in the base coin; ``min_notional`` is in quote currency (USD).
    """

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    contract_multiplier: Decimal = Decimal(1)
    inverse: bool = False
    min_notional: Decimal = Decimal(0)
    venue: str = ""

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise GridError(f"{self.symbol}: tick_size and lot_size must be > 0")

    def px_to_ticks(self, text: str | int | Decimal) -> int:
        return to_units(text, self.tick_size)

    def qty_to_lots(self, text: str | int | Decimal) -> int:
        return to_units(text, self.lot_size)

    def ticks_to_px(self, ticks: int) -> str:
        return from_units(ticks, self.tick_size)

    def lots_to_qty(self, lots: int) -> str:
        return from_units(lots, self.lot_size)

    def px_float(self, ticks: int) -> float:
        return float(ticks * self.tick_size)

    def qty_float(self, lots: int) -> float:
        return float(lots * self.lot_size)

    def notional_usd(self, ticks: int, lots: int) -> Decimal:
        """Exact quote-currency notional of ``lots`` at ``ticks`` (inverse: contracts x multiplier)."""
        if self.inverse:
            return Decimal(lots) * self.lot_size * self.contract_multiplier
        return Decimal(ticks) * self.tick_size * Decimal(lots) * self.lot_size * self.contract_multiplier


def infer_step(values: list[str]) -> Decimal:
    """The coarsest power-of-ten step on which every decimal string lies (for inference)."""
    places = 0
    for text in values:
        if "." in text:
            frac = text.split(".", 1)[1].rstrip("0")
            places = max(places, len(frac))
    return Decimal(1).scaleb(-places)


# ----------------------------------------------------------------------------- fast exact path
# ``to_units``/``from_units`` go through ``Decimal`` (about 1 us a value).  Readers convert
# millions of values, so they split a step once into ``mantissa * 10**-places`` (0.01 ->
# (1, 2); 0.5 -> (5, 1); 10 -> (10, 0)) and then convert with string slicing and ``int()``:
# still exact (no float anywhere), about 3-5x faster.  Property tests check both paths agree.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def step_scale(step: Decimal) -> tuple[int, int]:
    """``(mantissa, places)`` with ``step == mantissa * 10**-places`` and ``places >= 0``."""
    if not step.is_finite() or step <= 0:
        raise GridError(f"step must be a positive finite decimal, got {step}")
    _sign, digits, exp = step.normalize().as_tuple()
    assert isinstance(exp, int)
    mantissa = int("".join(map(str, digits)))
    if exp >= 0:
        return mantissa * 10**exp, 0
    return mantissa, -exp


def is_decimal_text(text: object) -> bool:
    """True for a plain decimal string: optional ``-``, digits, optional ``.digits`` (no exponent)."""
    return isinstance(text, str) and _DECIMAL_TEXT.fullmatch(text) is not None


def parse_units(text: str, mantissa: int, places: int) -> int:
    """Exact ``text / (mantissa * 10**-places)`` for a plain decimal string (see ``is_decimal_text``).

    Raises ``GridError`` if ``text`` is not a plain decimal string or not on the grid.
    """
    if not is_decimal_text(text):
        raise GridError(f"not a plain decimal string: {text!r}")
    return plain_to_units(text, mantissa, places)


def plain_to_units(text: str, mantissa: int, places: int) -> int:
    """``parse_units`` for text already known to be a plain decimal string (no format check)."""
    if places and text[-places - 1 : -places] == ".":  # exactly ``places`` decimals: what writers emit
        units = int(text.replace(".", ""))
    else:
        whole, _, frac = text.partition(".")
        if len(frac) > places:
            if frac[places:].strip("0"):
                raise GridError(f"{text} is not a multiple of {format_units(1, mantissa, places)}")
            frac = frac[:places]
        units = int(whole + frac + "0" * (places - len(frac)))
    if mantissa != 1:
        units, rest = divmod(units, mantissa)
        if rest:
            raise GridError(f"{text} is not a multiple of {format_units(1, mantissa, places)}")
    return units


def format_units(units: int, mantissa: int, places: int) -> str:
    """``units * step`` as a plain decimal string with exactly ``places`` decimals."""
    value = units * mantissa
    if not places:
        return str(value)
    digits = str(-value if value < 0 else value).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + digits[:-places] + "." + digits[-places:]
