"""The ledger: positions, average entry, realized/unrealized PnL, fees, turnover, equity.

Why it exists: every number a backtest or a live run is judged by (net PnL, net_bps,
drawdown, CVaR) starts here, so the ledger books each fill exactly once and exactly.
``docs/metrics.md`` is the user reference.

Number kinds, and why:

- prices and sizes arrive as integer ticks and lots (``Fill``); turnover is an integer sum
  of ``ticks x lots`` (linear) or ``lots`` (inverse), scaled to USD once;
- booked money (PnL, position basis, fees) is an ``int`` of 1e-18 of the settlement
  currency ("atto": USD for linear contracts, the base coin for inverse ones).  Integers
  are exact and fast, and unlike ``Fraction`` they never grow: an average-cost book over
  a million fills costs the same per fill as over ten;
- USD totals are exact ``Decimal``s (an atto amount, times the mark for coin), computed in
  a 100-digit context that *traps* ``Inexact``: a silent rounding there is impossible;
- reports get ``Decimal`` views rounded once, half-even, to ``USD_QUANTUM`` (1e-8 USD, the
  fee quantum) and ``core/stats.py`` turns those exact values into floats.

Exactly two rounding rules exist, both half-even to 1 atto, both documented here and in
``docs/metrics.md``, and ``recompute`` (the independent second algorithm) applies them
the same way:

1. *per-lot value*: the value of one lot at a price, ``v(p)``, is rounded to 1 atto.  For
   linear contracts ``v(p) = p x lot_size x multiplier`` is already on the grid for any
   instrument whose tick x lot x multiplier has at most 18 decimals (all real ones), so
   only inverse contracts (``1/p``) and exotic marks ever round: at most 0.5e-18 coin per
   lot;
2. *released basis*: closing ``k`` of ``|q|`` lots releases ``round(B x k / |q|)`` of the
   position's basis ``B``.  This only moves <= 0.5 atto between realized and unrealized;
   their sum never changes.

So ``realized + unrealized - fees + rebates == cash flows of the fills + open lots at the
mark - fees`` holds *exactly* (``==``), and the reconciliation test checks it.

Contracts.  Linear (``inverse=False``): settles in the quote currency (USD/USDT, counted
as USD); PnL = ``lots x lot_size x multiplier x (exit - entry)``.  Inverse
(``inverse=True``, e.g. ``BTCUSD_PERP`` with ``contract_multiplier`` 100 USD): sized in
contracts, settles in the base coin; PnL in coin = ``contracts x multiplier x (1/entry -
1/exit)`` for a long.  One rule covers both with the per-lot value ``v(p) = p x lot_size x
multiplier`` (linear) or ``v(p) = -lot_size x multiplier / p`` (inverse): ``q`` lots with
basis ``B`` (the sum of ``v`` at entry) are worth ``q x v(mark) - B``, and closing ``k`` at
``p`` realizes ``sign(q) x k x v(p) - round(B x k / |q|)``.  The average entry is ``B /
(q x lot_size x multiplier)`` (linear, arithmetic mean) or ``-q x lot_size x multiplier /
B`` (inverse, harmonic mean), as exchanges report it.  Average-cost accounting: a fill
that adds to a position re-averages, a reducing fill keeps the average.

USD for coin: an inverse symbol's coin amounts are converted at that symbol's *current*
mark (the coin is worth ``mark`` USD now).  The coin collateral itself is outside the
ledger (strategy PnL only).  ``daily()`` instead values each day's coin fees at the fill
price, so a closed day never changes.  The mark is the last mid passed to ``mark`` or
``mark_mid2`` (before any, the last fill price).

Pure: stdlib only, no I/O, no clock: time arrives as integer nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact
from fractions import Fraction

from mmkit.core.events import BUY, SELL
from mmkit.core.instruments import Instrument
from mmkit.core.types import Fill

__all__ = [
    "ATTO",
    "USD_QUANTUM",
    "USD_E8",
    "NS_PER_MS",
    "NS_PER_DAY",
    "MAKER",
    "TAKER",
    "usd",
    "usd_e8",
    "e8_to_usd",
    "atto_to_decimal",
    "Position",
    "LedgerTotals",
    "EquityPoint",
    "DailyRow",
    "Reconciliation",
    "Recomputed",
    "Ledger",
    "recompute",
]

ATTO = 10**18
"""Booked amounts are ints of 1e-18 of the settlement currency."""
USD_QUANTUM = Decimal("0.00000001")
"""Money views are exact values rounded once, half-even, to 1e-8 USD (the fee quantum)."""
USD_E8 = 100_000_000
"""Equity samples are ints of 1e-8 USD (compact; exact differences for the statistics)."""
_ATTO_PER_E8 = ATTO // USD_E8
NS_PER_MS = 1_000_000
NS_PER_DAY = 86_400 * 1_000_000_000
MAKER = "maker"
TAKER = "taker"

# Exact arithmetic: 100 significant digits and Inexact trapped, so any product or sum
# that would need rounding raises instead (amounts up to 1e30 USD at 1e-18 fit easily).
_EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN, traps=[Inexact])
# The one deliberate rounding to a quantum (quantize of an exact value: single rounding).
_ROUND = Context(prec=100, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_TWO = Decimal(2)


def atto_to_decimal(n: int) -> Decimal:
    """An atto int as an exact ``Decimal`` (``n x 1e-18``)."""
    return Decimal(n).scaleb(-18, _EXACT)


def usd(x: Decimal | Fraction | int) -> Decimal:
    """The reporting view of an exact amount: rounded once, half-even, to ``USD_QUANTUM``.

    Never ``-0``: a tiny negative amount that rounds away is ``0E-8``.
    """
    if isinstance(x, Fraction):
        return e8_to_usd(round(x * USD_E8))
    r = Decimal(x).quantize(USD_QUANTUM, context=_ROUND)
    return r.copy_abs() if r.is_zero() else r


def usd_e8(x: Decimal | Fraction | int) -> int:
    """An exact amount as an int of 1e-8 USD, rounded half-even."""
    if isinstance(x, Fraction):
        return round(x * USD_E8)
    return int(Decimal(x).scaleb(8, _EXACT).quantize(_ONE, context=_ROUND))


def div_half_even(n: int, d: int) -> int:
    """``round(Fraction(n, d))`` for ``d > 0`` without a Fraction: nearest, ties to even."""
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q & 1):
        q += 1
    return q


def atto_to_e8(n: int) -> int:
    """``usd_e8(atto_to_decimal(n))`` with ints: ``n x 1e-18`` in 1e-8 units, half-even."""
    return div_half_even(n, _ATTO_PER_E8)


def e8_to_usd(n: int) -> Decimal:
    """An int of 1e-8 USD as a ``Decimal`` with exactly 8 decimals."""
    return Decimal(n).scaleb(-8, _EXACT)


def _exact_fee_atto(fee: object) -> int:
    if isinstance(fee, bool) or not isinstance(fee, (Decimal, int)):
        raise TypeError(f"Fill.fee must be an exact Decimal (or int), got {type(fee).__name__}")
    if isinstance(fee, int):
        return fee * ATTO
    if not fee.is_finite():
        raise ValueError(f"Fill.fee must be finite, got {fee}")
    exp = fee.as_tuple().exponent
    if isinstance(exp, int) and exp >= -18:  # on the grid: the shift is exact
        return int(fee.scaleb(18, _EXACT))
    f = Fraction(fee) * ATTO
    if f.denominator != 1:
        raise ValueError(f"Fill.fee {fee} is finer than 1e-18: not bookable exactly")
    return f.numerator


def _check_fill(fill: Fill) -> None:
    if fill.side not in (BUY, SELL):
        raise ValueError(f"fill side must be BUY (+1) or SELL (-1), got {fill.side!r}")
    if isinstance(fill.qty, bool) or not isinstance(fill.qty, int) or fill.qty <= 0:
        raise ValueError(f"fill qty must be a positive int of lots, got {fill.qty!r}")
    if isinstance(fill.price, bool) or not isinstance(fill.price, int) or fill.price <= 0:
        raise ValueError(f"fill price must be a positive int of ticks, got {fill.price!r}")
    if fill.liquidity not in (MAKER, TAKER):
        raise ValueError(f"fill liquidity must be 'maker' or 'taker', got {fill.liquidity!r}")


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Position:
    """One symbol's book as of the call that made it; every amount exact.

    ``*_settle`` amounts are exact ``Decimal``s in the contract's settlement currency (USD
    for linear, the base coin for inverse); the ``*_usd`` properties convert at
    ``mark_px`` (inverse) and round once to ``USD_QUANTUM``.  ``avg_entry_px`` is the
    average entry price in quote per base implied exactly by the booked basis, as a
    ``Fraction`` (an average of three fills is a third of a tick; None when flat); the two
    rounding rules can move it by ~1e-18 relative.  ``mark_px`` is the price unrealized
    PnL uses (None before any mark or fill).
    """

    symbol: str
    inverse: bool
    qty_lots: int
    avg_entry_px: Fraction | None
    mark_px: Decimal | None
    realized_pnl_settle: Decimal
    unrealized_pnl_settle: Decimal
    fees_paid_settle: Decimal
    rebates_earned_settle: Decimal
    turnover_usd: Decimal
    maker_notional_usd: Decimal
    taker_notional_usd: Decimal
    fills: int
    maker_fills: int
    taker_fills: int
    closing_fills: int
    winning_closes: int

    def _in_usd(self, x: Decimal) -> Decimal:
        if not self.inverse:
            return usd(x)
        return usd(_EXACT.multiply(x, self.mark_px)) if self.mark_px is not None else usd(0)

    @property
    def realized_pnl_usd(self) -> Decimal:
        return self._in_usd(self.realized_pnl_settle)

    @property
    def unrealized_pnl_usd(self) -> Decimal:
        return self._in_usd(self.unrealized_pnl_settle)

    @property
    def fees_paid_usd(self) -> Decimal:
        return self._in_usd(self.fees_paid_settle)

    @property
    def rebates_earned_usd(self) -> Decimal:
        return self._in_usd(self.rebates_earned_settle)

    @property
    def net_pnl_settle(self) -> Decimal:
        """``realized + unrealized - fees + rebates`` (exact)."""
        return _EXACT.add(_EXACT.subtract(_EXACT.add(self.realized_pnl_settle, self.unrealized_pnl_settle),
                                          self.fees_paid_settle), self.rebates_earned_settle)

    @property
    def net_pnl_usd(self) -> Decimal:
        """The exact net converted and rounded once."""
        return self._in_usd(self.net_pnl_settle)

    @property
    def avg_entry_float(self) -> float:
        """Float view of the average entry price (0.0 when flat), for plots and logs."""
        return float(self.avg_entry_px) if self.avg_entry_px is not None else 0.0


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """All symbols together, in USD, as ``Decimal`` views (each rounded once from exact).

    ``net_pnl_usd = gross_pnl_usd - fees_usd + rebates_usd`` holds exactly before rounding;
    the rounded views may differ from that sum by at most 2e-8 (each is rounded alone).
    ``fees_usd`` and ``rebates_usd`` are both >= 0.  ``peak_exposure_usd`` is the largest
    gross position (sum of ``|notional|`` at the marks) seen after a fill or at a sample.
    """

    realized_pnl_usd: Decimal
    unrealized_pnl_usd: Decimal
    gross_pnl_usd: Decimal
    fees_usd: Decimal
    rebates_usd: Decimal
    net_pnl_usd: Decimal
    turnover_usd: Decimal
    maker_notional_usd: Decimal
    taker_notional_usd: Decimal
    fills: int
    maker_fills: int
    taker_fills: int
    closing_fills: int
    winning_closes: int
    peak_exposure_usd: Decimal

    def floats(self) -> dict[str, float | int]:
        """Float view for metrics exporters and plots (counts stay ints); never booked."""
        return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in
                ((name, getattr(self, name)) for name in self.__dataclass_fields__)}


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """One sample of the equity curve: net PnL since the start (USD) and gross exposure.

    ``equity_usd`` is strategy PnL (realized + unrealized - fees + rebates), not account
    balance: add the starting capital for a balance.
    """

    ts_ns: int
    equity_usd: Decimal
    exposure_usd: Decimal


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One UTC day (``utc_day`` = days since 1970-01-01) for ``LEDGER_DAILY``.

    ``equity_usd`` is the day's last equity sample (carried from the previous day if it
    had none) and ``pnl_usd`` its change against the previous day's, starting from 0.
    Coin fees of inverse contracts are valued at each fill's price.
    """

    utc_day: int
    fills: int
    turnover_usd: Decimal
    fees_usd: Decimal
    rebates_usd: Decimal
    pnl_usd: Decimal
    equity_usd: Decimal


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Ledger minus an independent recomputation from raw fills (all zero when they agree).

    Money differences are exact ``Decimal``s in USD, so agreement is ``== Decimal(0)``,
    not a tolerance.  ``total_diff_usd`` compares the ledger's net PnL with pure cash
    flows plus the open positions at the marks minus fees (no averages involved).
    """

    position_diff_lots: int
    realized_diff_usd: Decimal
    fees_diff_usd: Decimal
    rebates_diff_usd: Decimal
    turnover_diff_usd: Decimal
    total_diff_usd: Decimal

    @property
    def ok(self) -> bool:
        return self.position_diff_lots == 0 and not any(
            (self.realized_diff_usd, self.fees_diff_usd, self.rebates_diff_usd, self.turnover_diff_usd,
             self.total_diff_usd))


# ----------------------------------------------------------------------------- per symbol
class _Book:
    """Mutable per-symbol state (never handed out: ``Ledger.position`` snapshots it)."""

    __slots__ = ("inst", "inverse", "tick", "face", "face_atto", "lin_atto_per_tick", "turnover_unit", "qty",
                 "basis", "realized", "fees", "rebates", "turnover_units", "maker_units", "taker_units", "fills",
                 "maker_fills", "taker_fills", "closing_fills", "winning_closes", "mark_src", "mark_px", "mark_v",
                 "mark_ts_ns", "last_px", "last_v", "_vcache")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.inverse = bool(inst.inverse)
        self.tick = inst.tick_size
        # linear: quote per lot per unit of price; inverse: USD face value of one lot
        self.face = _EXACT.multiply(inst.lot_size, inst.contract_multiplier)
        self.face_atto = Fraction(self.face) * ATTO
        lin = Fraction(self.tick) * self.face_atto
        self.lin_atto_per_tick = lin.numerator if lin.denominator == 1 and not self.inverse else None
        # one turnover unit in USD: ticks x lots (linear) or lots (inverse)
        self.turnover_unit = self.face if self.inverse else _EXACT.multiply(self.face, self.tick)
        self.qty = 0
        self.basis = 0  # atto: sum of v(entry) over the open lots (signed)
        self.realized = 0  # atto
        self.fees = 0  # atto, >= 0
        self.rebates = 0  # atto, >= 0
        self.turnover_units = 0
        self.maker_units = 0
        self.taker_units = 0
        self.fills = 0
        self.maker_fills = 0
        self.taker_fills = 0
        self.closing_fills = 0
        self.winning_closes = 0
        self.mark_src: int | Decimal | None = None  # int = bid + ask in ticks; Decimal = price
        self.mark_px: Decimal | None = None  # cache of the converted mark price
        self.mark_v: int | None = None  # cache of v(mark)
        self.mark_ts_ns = 0
        self.last_px: Decimal | None = None
        self.last_v = 0
        self._vcache: dict[int, int] = {}  # inverse: ticks -> v (fills cluster on few prices)

    # rule 1: the per-lot value, rounded half-even to 1 atto
    def value(self, px: Decimal) -> int:
        if self.inverse:
            return -round(self.face_atto / Fraction(px))
        return round(Fraction(px) * self.face_atto)

    def value_ticks(self, ticks: int) -> int:
        per = self.lin_atto_per_tick
        if per is not None:
            return ticks * per
        v = self._vcache.get(ticks)
        if v is None:
            if len(self._vcache) >= 65_536:
                self._vcache.clear()
            v = self._vcache[ticks] = self.value(_EXACT.multiply(Decimal(ticks), self.tick))
        return v

    def mark(self) -> Decimal | None:
        px = self.mark_px
        if px is None:
            src = self.mark_src
            if src is None:
                return self.last_px
            if isinstance(src, Decimal):
                px = src
            else:
                px = _EXACT.divide(_EXACT.multiply(Decimal(src), self.tick), Decimal(2))
            self.mark_px = px
        return px

    def mark_value(self) -> int:
        v = self.mark_v
        if v is None:
            src = self.mark_src
            if src is None:
                return self.last_v
            if isinstance(src, int) and src % 2 == 0:
                v = self.value_ticks(src // 2)
            elif isinstance(src, int) and self.lin_atto_per_tick is not None:
                # a half-tick mid: round(Fraction(mid) * face_atto) = src * per / 2, half-even
                v = div_half_even(src * self.lin_atto_per_tick, 2)
            else:
                px = self.mark()
                assert px is not None
                v = self.value(px)
            self.mark_v = v
        return v

    def unrealized(self) -> int:
        return self.qty * self.mark_value() - self.basis if self.qty else 0

    def net_settle(self) -> int:
        return self.realized + self.unrealized() - self.fees + self.rebates

    def to_usd(self, atto: int) -> Decimal:
        """An atto amount of this book's settlement currency in USD, exact."""
        d = atto_to_decimal(atto)
        if not self.inverse:
            return d
        m = self.mark()
        return _EXACT.multiply(d, m) if m is not None else _ZERO

    def exposure_usd(self) -> Decimal:
        if self.qty == 0:
            return _ZERO
        n = Decimal(abs(self.qty))
        if self.inverse:
            return _EXACT.multiply(n, self.face)
        m = self.mark()
        assert m is not None  # a position implies a fill, so a fallback mark exists
        return _EXACT.multiply(_EXACT.multiply(n, self.face), m)

    def avg_entry(self) -> Fraction | None:
        if self.qty == 0:
            return None
        if self.inverse:
            return -self.qty * self.face_atto / self.basis
        return Fraction(self.basis) / (self.qty * self.face_atto)

    def book(self, side: int, lots: int, v: int) -> int | None:
        """Apply ``side x lots`` at per-lot value ``v``; return the realized atto if it reduced the position."""
        q = self.qty
        if q == 0 or (q > 0) == (side > 0):
            self.basis += side * lots * v
            self.qty = q + side * lots
            return None
        aq = abs(q)
        k = min(lots, aq)
        # rule 2: the released basis, rounded half-even to 1 atto (exact when closing all)
        released = self.basis if k == aq else div_half_even(self.basis * k, aq)
        pnl = (k if q > 0 else -k) * v - released
        self.realized += pnl
        rest = lots - k
        if k == aq:  # closed, and maybe flipped: the rest opens at this price
            self.basis = side * rest * v
            self.qty = side * rest
        else:
            self.basis -= released
            self.qty = q + side * lots
        return pnl


# ----------------------------------------------------------------------------- ledger
class Ledger:
    """Books fills for a set of instruments and samples an equity curve on a fixed grid.

    Driver contract (deterministic, event time only):

    - ``sample(ts_ns)`` *before* applying an event stamped ``ts_ns``, and once at the end
      of the run with its end time: every grid time ``k x equity_interval_ms`` from the
      first call up to ``ts_ns`` not yet sampled gets a point with the equity as of then
      (the state cannot change between events, so one value serves a whole gap);
    - ``mark(symbol, mid, ts_ns)`` / ``mark_mid2`` on mid changes (cheap: the conversion
      happens lazily when a value is needed);
    - ``on_fill(fill)`` for every fill report; a report with ``cum_qty > 0`` whose
      ``(client_id, cum_qty)`` was already booked is ignored (venues redeliver).
    """

    __slots__ = ("_books", "equity_interval_ms", "_interval_ns", "_next_due", "_eq_ts", "_eq_e8", "_ex_e8",
                 "_seen", "_peak_ex", "_peak_e2", "_days")

    def __init__(self, instruments: Mapping[str, Instrument], equity_interval_ms: int = 1000) -> None:
        if isinstance(equity_interval_ms, bool) or not isinstance(equity_interval_ms, int) or equity_interval_ms <= 0:
            raise ValueError(f"equity_interval_ms must be a positive int, got {equity_interval_ms!r}")
        self._books: dict[str, _Book] = {}
        for sym, inst in instruments.items():
            if not isinstance(inst, Instrument):
                raise TypeError(f"{sym}: expected an Instrument, got {type(inst).__name__}")
            self._books[sym] = _Book(inst)
        self.equity_interval_ms = equity_interval_ms
        self._interval_ns = equity_interval_ms * NS_PER_MS
        self._next_due: int | None = None
        self._eq_ts: list[int] = []
        self._eq_e8: list[int] = []
        self._ex_e8: list[int] = []
        self._seen: set[tuple[str, int]] = set()
        self._peak_ex = _ZERO
        self._peak_e2: int | None = 0  # the peak as twice its atto value, when known exactly as an int
        # utc_day -> [fills, turnover_usd, fees_usd, rebates_usd] (exact Decimals)
        self._days: dict[int, list] = {}

    def _book(self, symbol: str) -> _Book:
        try:
            return self._books[symbol]
        except KeyError:
            raise KeyError(f"ledger has no instrument {symbol!r}") from None

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._books)

    # ------------------------------------------------------------------ inputs
    def on_fill(self, fill: Fill) -> bool:
        """Book one fill; False (and nothing booked) for a duplicate report."""
        b = self._book(fill.symbol)
        _check_fill(fill)
        fee = _exact_fee_atto(fill.fee)
        if fill.cum_qty:
            key = (fill.client_id, fill.cum_qty)
            if key in self._seen:
                return False
            self._seen.add(key)
        v = b.value_ticks(fill.price)
        pnl = b.book(fill.side, fill.qty, v)
        if pnl is not None:
            b.closing_fills += 1
            if pnl > 0:
                b.winning_closes += 1
        if fee >= 0:
            b.fees += fee
        else:
            b.rebates -= fee
        units = fill.qty if b.inverse else fill.price * fill.qty
        b.turnover_units += units
        b.fills += 1
        if fill.liquidity == MAKER:
            b.maker_units += units
            b.maker_fills += 1
        else:
            b.taker_units += units
            b.taker_fills += 1
        px = _EXACT.multiply(Decimal(fill.price), b.tick)
        b.last_px = px
        b.last_v = v
        day = self._days.get(fill.ts // NS_PER_DAY)
        if day is None:
            day = self._days[fill.ts // NS_PER_DAY] = [0, _ZERO, _ZERO, _ZERO]
        day[0] += 1
        day[1] = _EXACT.add(day[1], _EXACT.multiply(Decimal(units), b.turnover_unit))
        fee_usd = atto_to_decimal(abs(fee))
        if b.inverse:
            fee_usd = _EXACT.multiply(fee_usd, px)
        if fee >= 0:
            day[2] = _EXACT.add(day[2], fee_usd)
        else:
            day[3] = _EXACT.add(day[3], fee_usd)
        self._track_exposure()
        return True

    def mark(self, symbol: str, mid: int | Decimal, ts_ns: int) -> None:
        """Set the mark: ``int`` = mid in ticks, ``Decimal`` = mid price (quote per base).

        Floats are refused (a float mid would make the books inexact); for a half-tick mid
        use ``mark_mid2(symbol, bid + ask, ts_ns)`` or a ``Decimal`` price.
        """
        b = self._book(symbol)
        if isinstance(mid, bool) or not isinstance(mid, (int, Decimal)):
            raise TypeError(f"mark takes int ticks or a Decimal price, got {type(mid).__name__}")
        if isinstance(mid, Decimal):
            if not mid.is_finite() or mid <= 0:
                raise ValueError(f"{symbol}: mark price must be finite and > 0, got {mid}")
            b.mark_src = mid
        else:
            if mid <= 0:
                raise ValueError(f"{symbol}: mark must be > 0 ticks, got {mid}")
            b.mark_src = 2 * mid
        b.mark_px = None
        b.mark_v = None
        b.mark_ts_ns = ts_ns

    def mark_mid2(self, symbol: str, mid2_ticks: int, ts_ns: int) -> None:
        """Set the mark from ``bid + ask`` in ticks (twice the mid, so half ticks stay exact)."""
        b = self._book(symbol)
        if isinstance(mid2_ticks, bool) or not isinstance(mid2_ticks, int) or mid2_ticks <= 0:
            raise ValueError(f"{symbol}: mid2_ticks must be a positive int, got {mid2_ticks!r}")
        b.mark_src = mid2_ticks
        b.mark_px = None
        b.mark_v = None
        b.mark_ts_ns = ts_ns

    def sample(self, ts_ns: int) -> int:
        """Append equity points for every grid time up to ``ts_ns`` not yet sampled; return how many.

        The grid is absolute (multiples of the interval since the epoch), so two runs over
        the same events sample the same instants.  The first call anchors the curve at the
        first grid time ``>= ts_ns``.  Cheap when nothing is due (one comparison).
        """
        nd = self._next_due
        if nd is None:
            nd = -(-ts_ns // self._interval_ns) * self._interval_ns
            self._next_due = nd
        if ts_ns < nd:
            return 0
        step = self._interval_ns
        n = (ts_ns - nd) // step + 1
        ex8 = self._track_exposure()
        eq8 = self._net_e8()
        self._eq_ts.extend(range(nd, nd + n * step, step))
        self._eq_e8.extend([eq8] * n)
        self._ex_e8.extend([ex8] * n)
        self._next_due = nd + n * step
        return n

    # ------------------------------------------------------------------ exact totals (USD Decimals)
    def _sum(self, f) -> Decimal:
        total = _ZERO
        for b in self._books.values():
            total = _EXACT.add(total, f(b))
        return total

    def _net_e8(self) -> int:
        """``usd_e8(net_pnl_exact())`` in ints when every book settles in USD (linear: the
        atto sum is already USD), the Decimal sum otherwise.  Same value either way."""
        total = 0
        for b in self._books.values():
            if b.inverse:
                return usd_e8(self.net_pnl_exact())
            total += b.net_settle()
        return atto_to_e8(total)

    def _exposure_e2(self) -> int | None:
        """Twice the gross exposure in atto USD as an int, when every book is linear with an
        int-grid lot value and an int mark (``|qty| x mark_src x per``: ``mark_src`` is twice
        the mid in ticks); None otherwise (the Decimal path then)."""
        total = 0
        for b in self._books.values():
            q = b.qty
            if q:
                per, src = b.lin_atto_per_tick, b.mark_src
                if per is None or src.__class__ is not int:
                    return None
                total += (q if q > 0 else -q) * src * per
        return total

    def _track_exposure(self) -> int:
        """The peak exposure updated with the current one; returns the current one in 1e-8
        USD (``usd_e8(_exposure())``), in ints when ``_exposure_e2`` can say it."""
        e2 = self._exposure_e2()
        if e2 is None:
            ex = self._exposure()
            if ex > self._peak_ex:
                self._peak_ex = ex
                self._peak_e2 = None
            return usd_e8(ex)
        peak = self._peak_e2
        if peak is None or e2 > peak:
            ex = _EXACT.divide(atto_to_decimal(e2), _TWO)
            if ex > self._peak_ex:
                self._peak_ex = ex
                self._peak_e2 = e2
            elif ex == self._peak_ex:
                self._peak_e2 = e2
        return div_half_even(e2, 2 * _ATTO_PER_E8)

    def _exposure(self) -> Decimal:
        return self._sum(_Book.exposure_usd)

    def net_pnl_exact(self) -> Decimal:
        """Net PnL in USD, exact: realized + unrealized - fees + rebates (coin at the marks)."""
        return self._sum(lambda b: b.to_usd(b.net_settle()))

    def realized_pnl_exact(self) -> Decimal:
        return self._sum(lambda b: b.to_usd(b.realized))

    def unrealized_pnl_exact(self) -> Decimal:
        return self._sum(lambda b: b.to_usd(b.unrealized()))

    def fees_exact(self) -> Decimal:
        """Fees paid in USD (>= 0)."""
        return self._sum(lambda b: b.to_usd(b.fees))

    def rebates_exact(self) -> Decimal:
        """Rebates earned in USD (>= 0)."""
        return self._sum(lambda b: b.to_usd(b.rebates))

    def turnover_exact(self) -> Decimal:
        """Traded notional in USD (linear: price x size x multiplier; inverse: contracts x multiplier)."""
        return self._sum(lambda b: _EXACT.multiply(Decimal(b.turnover_units), b.turnover_unit))

    def maker_notional_exact(self) -> Decimal:
        return self._sum(lambda b: _EXACT.multiply(Decimal(b.maker_units), b.turnover_unit))

    def taker_notional_exact(self) -> Decimal:
        return self._sum(lambda b: _EXACT.multiply(Decimal(b.taker_units), b.turnover_unit))

    def peak_exposure_exact(self) -> Decimal:
        """The largest gross exposure (USD) seen after a fill, at a sample, or now."""
        return max(self._peak_ex, self._exposure())

    # ------------------------------------------------------------------ views
    def position(self, symbol: str) -> Position:
        b = self._book(symbol)
        tu = b.turnover_unit
        return Position(
            symbol=symbol,
            inverse=b.inverse,
            qty_lots=b.qty,
            avg_entry_px=b.avg_entry(),
            mark_px=b.mark(),
            realized_pnl_settle=atto_to_decimal(b.realized),
            unrealized_pnl_settle=atto_to_decimal(b.unrealized()),
            fees_paid_settle=atto_to_decimal(b.fees),
            rebates_earned_settle=atto_to_decimal(b.rebates),
            turnover_usd=_EXACT.multiply(Decimal(b.turnover_units), tu),
            maker_notional_usd=_EXACT.multiply(Decimal(b.maker_units), tu),
            taker_notional_usd=_EXACT.multiply(Decimal(b.taker_units), tu),
            fills=b.fills,
            maker_fills=b.maker_fills,
            taker_fills=b.taker_fills,
            closing_fills=b.closing_fills,
            winning_closes=b.winning_closes,
        )

    def positions(self) -> dict[str, Position]:
        return {s: self.position(s) for s in self._books}

    def qty_lots(self, symbol: str) -> int:
        """Signed position in lots (cheap; for risk checks)."""
        return self._book(symbol).qty

    def totals(self) -> LedgerTotals:
        bs = self._books.values()
        realized = self.realized_pnl_exact()
        unrealized = self.unrealized_pnl_exact()
        return LedgerTotals(
            realized_pnl_usd=usd(realized),
            unrealized_pnl_usd=usd(unrealized),
            gross_pnl_usd=usd(_EXACT.add(realized, unrealized)),
            fees_usd=usd(self.fees_exact()),
            rebates_usd=usd(self.rebates_exact()),
            net_pnl_usd=usd(self.net_pnl_exact()),
            turnover_usd=usd(self.turnover_exact()),
            maker_notional_usd=usd(self.maker_notional_exact()),
            taker_notional_usd=usd(self.taker_notional_exact()),
            fills=sum(b.fills for b in bs),
            maker_fills=sum(b.maker_fills for b in bs),
            taker_fills=sum(b.taker_fills for b in bs),
            closing_fills=sum(b.closing_fills for b in bs),
            winning_closes=sum(b.winning_closes for b in bs),
            peak_exposure_usd=usd(self.peak_exposure_exact()),
        )

    def trim_samples(self, keep: int) -> int:
        """Drop all but the last ``keep`` equity/exposure samples (a long-running driver
        keeps a flat memory; the running totals are untouched).  Returns how many went."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        drop = max(0, len(self._eq_ts) - keep)
        if drop:
            for series in (self._eq_ts, self._eq_e8, self._ex_e8):
                del series[:drop]
        return drop

    @property
    def equity_ts_ns(self) -> list[int]:
        """Grid times of the equity samples (a copy)."""
        return list(self._eq_ts)

    @property
    def equity_e8(self) -> list[int]:
        """Equity samples as ints of 1e-8 USD (a copy): what ``core/stats.py`` computes on."""
        return list(self._eq_e8)

    @property
    def exposure_e8(self) -> list[int]:
        """Gross exposure samples (sum of ``|notional|`` at the marks) as ints of 1e-8 USD."""
        return list(self._ex_e8)

    def equity_curve(self) -> list[EquityPoint]:
        return [EquityPoint(t, e8_to_usd(e), e8_to_usd(x)) for t, e, x in zip(self._eq_ts, self._eq_e8, self._ex_e8)]

    def equity_floats(self) -> list[tuple[int, float]]:
        """``(ts_ns, equity_usd)`` float view for plots (the e8 ints divided by 1e8)."""
        return [(t, e / USD_E8) for t, e in zip(self._eq_ts, self._eq_e8)]

    def daily(self) -> list[DailyRow]:
        """Per UTC day: fills, turnover, fees, rebates, end-of-day equity and its change."""
        day_eq: dict[int, int] = {}
        for t, e in zip(self._eq_ts, self._eq_e8):
            day_eq[t // NS_PER_DAY] = e  # ascending times: the day's last sample wins
        rows = []
        prev = 0
        for d in sorted(set(self._days) | set(day_eq)):
            fills, turnover, fees, rebates = self._days.get(d, (0, _ZERO, _ZERO, _ZERO))
            eq = day_eq.get(d, prev)
            rows.append(DailyRow(d, fills, usd(turnover), usd(fees), usd(rebates), e8_to_usd(eq - prev), e8_to_usd(eq)))
            prev = eq
        return rows

    # ------------------------------------------------------------------ reconciliation
    def reconcile(self, fills: Iterable[Fill]) -> Reconciliation:
        """Compare the books with ``recompute`` over the raw fills, at the ledger's marks."""
        marks = {s: b.mark() for s, b in self._books.items()}
        r = recompute({s: b.inst for s, b in self._books.items()}, fills, marks)
        sub = _EXACT.subtract
        return Reconciliation(
            position_diff_lots=sum(abs(b.qty - r.qty_lots.get(s, 0)) for s, b in self._books.items()),
            realized_diff_usd=sub(self.realized_pnl_exact(), r.realized_usd),
            fees_diff_usd=sub(self.fees_exact(), r.fees_usd),
            rebates_diff_usd=sub(self.rebates_exact(), r.rebates_usd),
            turnover_diff_usd=sub(self.turnover_exact(), r.turnover_usd),
            total_diff_usd=sub(self.net_pnl_exact(), r.net_usd),
        )


# ----------------------------------------------------------------------------- second algorithm
@dataclass(frozen=True, slots=True)
class Recomputed:
    """What ``recompute`` derives from raw fills: exact USD amounts (coin at the marks)."""

    qty_lots: dict[str, int]
    realized_usd: Decimal
    fees_usd: Decimal
    rebates_usd: Decimal
    turnover_usd: Decimal
    net_usd: Decimal


def _half_even(x: Fraction) -> int:
    """Round to the nearest integer, ties to even, written out (independent of ``round``)."""
    fl, rem = divmod(x.numerator, x.denominator)
    twice = 2 * rem
    if twice > x.denominator or (twice == x.denominator and fl % 2 == 1):
        return fl + 1
    return fl


def recompute(instruments: Mapping[str, Instrument], fills: Iterable[Fill],
              marks: Mapping[str, Decimal | None]) -> Recomputed:
    """Re-derive the books from raw fills, written independently of ``Ledger``.

    Same conventions (average cost, the two rounding rules of the module doc), different
    code: ``Fraction`` arithmetic in settlement-currency units instead of atto ints, each
    fill split explicitly into its closing and opening parts, a hand-written half-even
    rounding.  Net PnL is pure cash flow, ``sum(-side x qty x v(px)) + q x v(mark) - fees``,
    which needs no average at all.  Duplicate reports are dropped by the ledger's rule.
    ``marks`` maps each symbol to its exact mark price (None: the last fill price).
    """
    grid = Fraction(1, ATTO)

    faces = {s: Fraction(i.lot_size) * Fraction(i.contract_multiplier) for s, i in instruments.items()}
    ticks_ = {s: Fraction(i.tick_size) for s, i in instruments.items()}

    def value(sym: str, px: Fraction) -> Fraction:
        face = faces[sym]
        exact = -face / px if instruments[sym].inverse else px * face
        if exact.denominator == 1:
            return exact
        return _half_even(exact / grid) * grid

    seen: set[tuple[str, int]] = set()
    qty: dict[str, int] = {}
    basis: dict[str, Fraction] = {}
    realized: dict[str, Fraction] = {}
    cash: dict[str, Fraction] = {}
    fees: dict[str, Fraction] = {}
    rebates: dict[str, Fraction] = {}
    turnover = Fraction(0)
    last_px: dict[str, Fraction] = {}
    for f in fills:
        if f.cum_qty:
            if (f.client_id, f.cum_qty) in seen:
                continue
            seen.add((f.client_id, f.cum_qty))
        inst = instruments[f.symbol]
        s = f.symbol
        px = f.price * ticks_[s]
        v = value(s, px)
        q, b = qty.get(s, 0), basis.get(s, Fraction(0))
        cash[s] = cash.get(s, Fraction(0)) - f.side * f.qty * v
        closing = min(f.qty, abs(q)) if q * f.side < 0 else 0
        opening = f.qty - closing
        if closing:
            if closing == abs(q):
                release = b
            else:
                release = _half_even(b * closing / abs(q) / grid) * grid
            realized[s] = realized.get(s, Fraction(0)) + (1 if q > 0 else -1) * closing * v - release
            b -= release
            q += f.side * closing
        b += f.side * opening * v
        q += f.side * opening
        qty[s], basis[s] = q, b
        fee = Fraction(f.fee)
        if fee >= 0:
            fees[s] = fees.get(s, Fraction(0)) + fee
        else:
            rebates[s] = rebates.get(s, Fraction(0)) - fee
        turnover += faces[s] * f.qty * (1 if inst.inverse else px)
        last_px[s] = px

    tot = {"realized": Fraction(0), "fees": Fraction(0), "rebates": Fraction(0), "net": Fraction(0)}
    for s in qty:
        inst = instruments[s]
        m = marks.get(s)
        mark = last_px[s] if m is None else Fraction(m)
        fx = mark if inst.inverse else Fraction(1)
        fee, reb = fees.get(s, Fraction(0)), rebates.get(s, Fraction(0))
        tot["realized"] += realized.get(s, Fraction(0)) * fx
        tot["fees"] += fee * fx
        tot["rebates"] += reb * fx
        tot["net"] += (cash[s] + qty[s] * value(s, mark) - fee + reb) * fx

    def dec(x: Fraction) -> Decimal:
        return _EXACT.divide(Decimal(x.numerator), Decimal(x.denominator))  # exact: denominators are 2^a 5^b

    return Recomputed(dict(qty), dec(tot["realized"]), dec(tot["fees"]), dec(tot["rebates"]), dec(turnover),
                      dec(tot["net"]))
