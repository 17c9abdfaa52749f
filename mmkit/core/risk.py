"""Risk guards: hard limits, intraday caps, the position skew guard and the kill switch.

Why guards separate from the strategy: the strategy decides what is worth quoting; a
guard decides what the account can afford, whatever the strategy thinks.  Every guard
here is a ``Gate`` (``core/gates.py``) with one rule in common: in breach it blocks
*risk-increasing* creates/amends only.  Cancels and reducing orders always pass, so a
guard can never stop the engine from getting flatter.

Risk-increasing (``increases_risk``): with signed position ``p`` lots and an order of
``side x qty`` lots, filling it fully would move the position further from zero:
``|p + side x qty| > |p|``.  From flat every order increases risk; an order that
crosses zero is increasing only if it ends further from zero than it started.

Inputs come from the engine through ``update_*`` calls; nothing is read from a clock:

- ``PositionBook.update_position(symbol, position_lots, now_ns)`` (or ``apply_fill``) and
  ``PositionBook.update_mark(symbol, lot_value_usd, now_ns)`` (USD value of one lot at
  the mark, e.g. ``float(instrument.notional_usd(mark_ticks, 1))``).  One book is shared
  by the guards; they subscribe to it and re-evaluate their state on every change.
- ``RiskGuard.update_equity(equity_usd, now_ns)``.
- ``IntradayCapsGuard.update_pnl(cum_pnl_usd, now_ns)``, ``add_turnover(notional_usd,
  now_ns)``, ``update_vol(vol_pct, now_ns)``.
- ``KillSwitch.evaluate_canary(...)``, ``trip(...)``, ``reset(...)``.

Every breach and recovery is a ``GuardEvent`` the caller drains for the audit log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from mmkit.core.gates import EventLog, fmt_num
from mmkit.core.types import OP_CANCEL, Action

__all__ = [
    "DAY_NS",
    "DEFAULT_COLOR",
    "IntradayCapsGuard",
    "IntradayCapsParams",
    "IntradayState",
    "KillSwitch",
    "KillswitchParams",
    "PosSkewParams",
    "PositionBook",
    "PositionSkewGuard",
    "RiskGuard",
    "RiskParams",
    "SkewState",
    "increases_risk",
    "utc_day",
]

DAY_NS = 86_400 * 1_000_000_000
DEFAULT_COLOR = "default"
BIAS_MIN_RATIO = 0.05


def utc_day(now_ns: int) -> int:
    """Days since 1970-01-01 UTC (UTC has no DST; leap seconds do not exist in Unix time)."""
    return now_ns // DAY_NS


def increases_risk(position_lots: int, side: int, qty_lots: int) -> bool:
    """Would filling ``side x qty_lots`` move a ``position_lots`` position further from zero?"""
    return abs(position_lots + side * qty_lots) > abs(position_lots)


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {x}")
    return x


# ----------------------------------------------------------------------------- positions
class PositionBook:
    """Signed positions (lots) and lot values (USD per lot at the mark) per symbol.

    The one place guards read exposure from.  Listeners (the guards) are called with
    ``(symbol, now_ns)`` after each change, so breach/recover events happen at the moment
    the position or the mark moved, not at the next order.  A mark equal to the last one
    is no change (the engine marks on every decision; listeners compare state, so a
    repeat would tell them nothing).
    """

    __slots__ = ("_pos", "_lot_usd", "_listeners")

    def __init__(self) -> None:
        self._pos: dict[str, int] = {}
        self._lot_usd: dict[str, float] = {}
        self._listeners: list[Callable[[str, int], None]] = []

    def subscribe(self, listener: Callable[[str, int], None]) -> None:
        self._listeners.append(listener)

    def _changed(self, symbol: str, now_ns: int) -> None:
        for fn in self._listeners:
            fn(symbol, now_ns)

    def update_position(self, symbol: str, position_lots: int, now_ns: int) -> None:
        """The position of ``symbol`` is now ``position_lots`` (signed: long > 0)."""
        self._pos[symbol] = int(position_lots)
        self._changed(symbol, now_ns)

    def apply_fill(self, symbol: str, side: int, qty_lots: int, now_ns: int) -> None:
        """Add a fill of ``side`` (+1 buy / -1 sell) x ``qty_lots`` to the position."""
        if side not in (1, -1) or qty_lots < 0:
            raise ValueError(f"fill needs side +1/-1 and qty_lots >= 0, got {side}, {qty_lots}")
        self._pos[symbol] = self._pos.get(symbol, 0) + side * qty_lots
        self._changed(symbol, now_ns)

    def update_mark(self, symbol: str, lot_value_usd: float, now_ns: int) -> None:
        """One lot of ``symbol`` is worth ``lot_value_usd`` at the current mark (> 0)."""
        if not (_finite(lot_value_usd, "lot_value_usd") > 0):
            raise ValueError(f"lot_value_usd must be > 0, got {lot_value_usd}")
        value = float(lot_value_usd)
        if self._lot_usd.get(symbol) == value:
            return  # nothing changed: the listeners' state already reflects this mark
        self._lot_usd[symbol] = value
        self._changed(symbol, now_ns)

    def position_lots(self, symbol: str) -> int:
        return self._pos.get(symbol, 0)

    def lot_value_usd(self, symbol: str) -> float | None:
        """USD per lot at the last mark, ``None`` before the first mark."""
        return self._lot_usd.get(symbol)

    def position_usd(self, symbol: str) -> float:
        """Signed USD exposure at the mark (0 while the symbol has no mark yet)."""
        return self._pos.get(symbol, 0) * self._lot_usd.get(symbol, 0.0)

    def symbols(self) -> list[str]:
        return sorted(set(self._pos) | set(self._lot_usd))

    def increases_risk(self, action: Action) -> bool:
        """True for a create/amend whose full fill moves the position further from zero."""
        if action.op == OP_CANCEL:
            return False
        return increases_risk(self._pos.get(action.symbol, 0), action.side, action.qty)  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- hard limits
class RiskParams(Protocol):
    """The ``risk`` config section (``RiskConfig``); ``*_pct`` are fractions (0.05 = 5%)."""

    @property
    def max_position_usd(self) -> float: ...

    @property
    def max_drawdown_pct(self) -> float: ...

    @property
    def risk_pause_threshold(self) -> float: ...


class RiskGuard(EventLog):
    """Hard limits: per-symbol position in USD, drawdown stop, drawdown pause.

    - ``max_position_usd`` (per symbol, 0 = off): a risk-increasing order is blocked
      (``"risk:max_position"``) if after its full fill ``|position| x lot value`` would
      exceed the limit; with no mark yet it is blocked as ``"risk:no_mark"`` (an
      exposure that cannot be valued is not allowed to grow).  A position that exceeds
      the limit (e.g. the mark moved) is a ``breach`` event, back within it ``recover``.
    - drawdown ``= (peak_equity - equity) / peak_equity`` from the highest equity seen
      (``peak_equity_usd`` restores a high-water mark across restarts).
    - ``risk_pause_threshold`` (fraction, 0 = off): drawdown ``>=`` it pauses
      risk-increasing orders (``"risk:paused"``); the pause lifts by itself when the
      drawdown is back under it.
    - ``max_drawdown_pct`` (fraction, 0 = off): drawdown ``>=`` it stops risk-increasing
      orders (``"risk:max_drawdown"``) and *latches*: only ``reset_drawdown`` (an
      operator decision) lifts it, resetting the peak to the current equity.
    """

    __slots__ = ("_book", "_max_pos_usd", "_max_dd", "_pause_dd", "_peak", "_equity", "_stopped", "_paused", "_pos_breach")

    def __init__(self, cfg: RiskParams, book: PositionBook, peak_equity_usd: float = 0.0) -> None:
        super().__init__()
        if cfg.max_position_usd < 0:
            raise ValueError(f"risk.max_position_usd must be >= 0 (0 = off), got {cfg.max_position_usd}")
        for name in ("max_drawdown_pct", "risk_pause_threshold"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ValueError(f"risk.{name} is a fraction in [0, 1], got {getattr(cfg, name)}")
        self._book = book
        self._max_pos_usd = float(cfg.max_position_usd)
        self._max_dd = float(cfg.max_drawdown_pct)
        self._pause_dd = float(cfg.risk_pause_threshold)
        self._peak = float(peak_equity_usd)
        self._equity: float | None = None
        self._stopped = False
        self._paused = False
        self._pos_breach: set[str] = set()
        book.subscribe(self._on_book)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def peak_equity_usd(self) -> float:
        return self._peak

    def drawdown_ratio(self) -> float:
        """Current drawdown from the peak as a fraction (0 before any equity or with no peak)."""
        if self._equity is None or self._peak <= 0:
            return 0.0
        return max(0.0, (self._peak - self._equity) / self._peak)

    def _on_book(self, symbol: str, now_ns: int) -> None:
        if self._max_pos_usd <= 0:
            return
        usd = self._book.position_usd(symbol)
        if (abs(usd) > self._max_pos_usd) != (symbol in self._pos_breach):
            self._flip(self._pos_breach, symbol, now_ns, "risk:max_position", symbol,
                       f"position_usd={fmt_num(usd)} limit_usd={fmt_num(self._max_pos_usd)}")

    def update_equity(self, equity_usd: float, now_ns: int) -> None:
        """Account equity in USD (marked to market); tracks the peak and the drawdown state."""
        self._equity = _finite(float(equity_usd), "equity_usd")
        if self._equity > self._peak:
            self._peak = self._equity
        dd = self.drawdown_ratio()
        detail = f"drawdown_ratio={fmt_num(dd)} equity_usd={fmt_num(self._equity)} peak_usd={fmt_num(self._peak)}"
        if self._max_dd > 0 and not self._stopped and dd >= self._max_dd:
            self._stopped = True
            self._emit(now_ns, "risk:max_drawdown", "", "breach", f"{detail} limit_ratio={fmt_num(self._max_dd)}")
        if self._pause_dd > 0:
            pause = dd >= self._pause_dd
            if pause != self._paused:
                self._paused = pause
                self._emit(now_ns, "risk:paused", "", "breach" if pause else "recover",
                           f"{detail} threshold_ratio={fmt_num(self._pause_dd)}")

    def reset_drawdown(self, now_ns: int) -> None:
        """Operator reset of a drawdown stop: the peak becomes the current equity."""
        if self._equity is not None:
            self._peak = self._equity
        if self._stopped:
            self._stopped = False
            self._emit(now_ns, "risk:max_drawdown", "", "reset", f"peak_usd={fmt_num(self._peak)}")
        if self._paused:
            self._paused = False
            self._emit(now_ns, "risk:paused", "", "recover", f"peak_usd={fmt_num(self._peak)}")

    def check(self, action: Action, now_ns: int) -> str | None:
        if action.op == OP_CANCEL:
            return None
        sym = action.symbol
        p = self._book.position_lots(sym)
        after = p + action.side * action.qty  # type: ignore[union-attr]
        if abs(after) <= abs(p):
            return None
        if self._stopped:
            return "risk:max_drawdown"
        if self._paused:
            return "risk:paused"
        if self._max_pos_usd > 0:
            v = self._book.lot_value_usd(sym)
            if v is None:
                return "risk:no_mark"
            if abs(after) * v > self._max_pos_usd:
                return "risk:max_position"
        return None

    @property
    def checks_orders(self) -> bool:
        """False with every limit off (0): nothing can stop or pause orders then."""
        return self._max_pos_usd > 0 or self._max_dd > 0 or self._pause_dd > 0

    tracks_sends = False  # on_sent below does nothing: GateChain does not call it

    def on_sent(self, action: Action, now_ns: int) -> None:
        return None


# ----------------------------------------------------------------------------- intraday caps
class IntradayCapsParams(Protocol):
    """The ``guards.intraday_caps`` section (``IntradayCapsConfig``); 0 disables a cap."""

    @property
    def daily_pnl_stop(self) -> float: ...

    @property
    def daily_turnover_cap(self) -> float: ...

    @property
    def daily_vol_cap(self) -> float: ...


@dataclass(frozen=True, slots=True)
class IntradayState:
    """The day's figures, as ``metrics.json`` reports them under ``intraday_caps``."""

    day: int
    pnl_usd: float
    turnover_usd: float
    vol_pct: float
    breached: tuple[str, ...]


class IntradayCapsGuard(EventLog):
    """Per-UTC-day stops (seed "Intraday Risk Caps"); each 0 = disabled.

    - ``daily_pnl_stop`` (USD): the day's PnL ``<= -daily_pnl_stop`` -> ``"intraday:pnl_stop"``;
    - ``daily_turnover_cap`` (USD): the day's traded notional ``>= cap`` -> ``"intraday:turnover_cap"``;
    - ``daily_vol_cap`` (percent, 2.5 = 2.5%): the day's volatility ``>= cap`` -> ``"intraday:vol_cap"``.

    A breached cap blocks risk-increasing orders until the UTC day ends (a stop is a stop:
    PnL coming back intraday does not lift it), then every figure resets and each lifted
    cap is a ``resume`` event (the seed's block/resume).  The day is ``now_ns // 86400 s``.
    PnL is given as a cumulative figure on any origin (realized, or marked to market if the
    engine wants open losses to count); the day's PnL is its change since the day's first
    value, and at a day roll the last value seen becomes the new day's origin.
    """

    __slots__ = ("_book", "_pnl_stop", "_turnover_cap", "_vol_cap", "_day", "_pnl_origin", "_pnl_last",
                 "_turnover", "_vol", "_blocked")

    def __init__(self, cfg: IntradayCapsParams, book: PositionBook, now_ns: int = 0) -> None:
        super().__init__()
        for name in ("daily_pnl_stop", "daily_turnover_cap", "daily_vol_cap"):
            if not getattr(cfg, name) >= 0:
                raise ValueError(f"guards.intraday_caps.{name} must be >= 0 (0 = off), got {getattr(cfg, name)}")
        self._book = book
        self._pnl_stop = float(cfg.daily_pnl_stop)
        self._turnover_cap = float(cfg.daily_turnover_cap)
        self._vol_cap = float(cfg.daily_vol_cap)
        self._day = utc_day(now_ns)
        self._pnl_origin: float | None = None
        self._pnl_last: float | None = None
        self._turnover = 0.0
        self._vol = 0.0
        self._blocked: list[str] = []  # reasons, in the order they tripped

    def _roll(self, now_ns: int) -> None:
        day = now_ns // DAY_NS
        if day <= self._day:
            return
        prev = self._day
        self._day = day
        self._pnl_origin = self._pnl_last
        self._turnover = 0.0
        self._vol = 0.0
        for reason in self._blocked:
            self._emit(now_ns, reason, "", "resume", f"utc_day={day} previous_day={prev}")
        self._blocked = []

    def day_pnl_usd(self) -> float:
        if self._pnl_last is None or self._pnl_origin is None:
            return 0.0
        return self._pnl_last - self._pnl_origin

    def state(self, now_ns: int) -> IntradayState:
        self._roll(now_ns)
        return IntradayState(self._day, self.day_pnl_usd(), self._turnover, self._vol, tuple(self._blocked))

    def _trip(self, reason: str, now_ns: int, detail: str) -> None:
        if reason not in self._blocked:
            self._blocked.append(reason)
            self._emit(now_ns, reason, "", "block", detail)

    def update_pnl(self, cum_pnl_usd: float, now_ns: int) -> None:
        """Cumulative PnL in USD (any origin); the day's PnL is measured from the day's first value."""
        self._roll(now_ns)
        self._pnl_last = _finite(float(cum_pnl_usd), "cum_pnl_usd")
        if self._pnl_origin is None:
            self._pnl_origin = self._pnl_last
        pnl = self.day_pnl_usd()
        if self._pnl_stop > 0 and pnl <= -self._pnl_stop:
            self._trip("intraday:pnl_stop", now_ns, f"day_pnl_usd={fmt_num(pnl)} stop_usd={fmt_num(self._pnl_stop)}")

    def add_turnover(self, notional_usd: float, now_ns: int) -> None:
        """Add a fill's traded notional in USD (its absolute value) to the day's turnover."""
        self._roll(now_ns)
        self._turnover += abs(_finite(float(notional_usd), "notional_usd"))
        if self._turnover_cap > 0 and self._turnover >= self._turnover_cap:
            self._trip("intraday:turnover_cap", now_ns,
                       f"turnover_usd={fmt_num(self._turnover)} cap_usd={fmt_num(self._turnover_cap)}")

    def update_vol(self, vol_pct: float, now_ns: int) -> None:
        """The day's accumulated volatility so far, in percent (the engine's estimate)."""
        self._roll(now_ns)
        self._vol = _finite(float(vol_pct), "vol_pct")
        if self._vol_cap > 0 and self._vol >= self._vol_cap:
            self._trip("intraday:vol_cap", now_ns, f"vol_pct={fmt_num(self._vol)} cap_pct={fmt_num(self._vol_cap)}")

    def check(self, action: Action, now_ns: int) -> str | None:
        if action.op == OP_CANCEL:
            return None
        if now_ns >= (self._day + 1) * DAY_NS:
            self._roll(now_ns)
        if not self._blocked or not self._book.increases_risk(action):
            return None
        return self._blocked[0]

    @property
    def checks_orders(self) -> bool:
        """False with every cap off: nothing ever blocks.  The day roll ``check`` would do
        happens anyway at the next update or ``state`` (each rolls first), with the same
        origin: the PnL only changes in ``update_pnl``, after its own roll."""
        return self._pnl_stop > 0 or self._turnover_cap > 0 or self._vol_cap > 0

    tracks_sends = False  # on_sent below does nothing: GateChain does not call it

    def on_sent(self, action: Action, now_ns: int) -> None:
        return None


# ----------------------------------------------------------------------------- position skew
class PosSkewParams(Protocol):
    """The ``guards.pos_skew`` section (``PosSkewConfig``): USD limits, 0 = disabled."""

    @property
    def per_symbol_abs_limit(self) -> float: ...

    @property
    def per_color_abs_limit(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SkewState:
    """What ``metrics.json`` reports under ``position_skew``."""

    positions_usd: dict[str, float]
    symbol_breach: tuple[str, ...]
    color_breach: tuple[str, ...]


class PositionSkewGuard(EventLog):
    """Position Skew Guard (seed): freeze symbols over their limit, bias colors over theirs.

    - ``per_symbol_abs_limit`` (USD, 0 = off): ``|position_usd(symbol)| > limit`` freezes
      the symbol: risk-increasing orders on it get ``"pos_skew:freeze"`` until it is back
      within the limit (``breach``/``recover`` events, guard ``pos_skew:freeze``).
    - ``per_color_abs_limit`` (USD, 0 = off): a color is a group label per symbol (a
      rollout color, a sector, any user grouping; ``"default"`` when not given).  Its net
      ``= sum of signed position_usd`` of its symbols.  ``|net| > limit`` is a color breach
      (events with guard ``pos_skew:bias`` and symbol ``"color:<name>"``) and biases sizing:
      ``size_factor(symbol, side)`` is ``1 + b`` for the side that reduces the color's net
      and ``1 - b`` for the side that expands it, with
      ``b = min(bias_cap_ratio, 0.05 + 0.05 x (|net| - limit) / limit)``: 5% just past the
      limit, growing to 10% at twice the limit (the seed's "+/-5..10% sizing drift";
      ``bias_cap_ratio`` is ``allocator.smoothing.bias_cap_ratio``, default 0.10).
      A color breach does not block anything; it only leans the quotes.
    """

    __slots__ = ("_book", "_sym_limit", "_color_limit", "_bias_cap", "_colors", "_frozen", "_color_breach")

    def __init__(self, cfg: PosSkewParams, book: PositionBook, colors: Mapping[str, str] | None = None,
                 bias_cap_ratio: float = 0.10) -> None:
        super().__init__()
        for name in ("per_symbol_abs_limit", "per_color_abs_limit"):
            if not getattr(cfg, name) >= 0:
                raise ValueError(f"guards.pos_skew.{name} must be >= 0 (USD, 0 = off), got {getattr(cfg, name)}")
        if not 0.0 <= bias_cap_ratio < 1.0:
            raise ValueError(f"bias_cap_ratio must be in [0, 1), got {bias_cap_ratio}")
        self._book = book
        self._sym_limit = float(cfg.per_symbol_abs_limit)
        self._color_limit = float(cfg.per_color_abs_limit)
        self._bias_cap = float(bias_cap_ratio)
        self._colors: dict[str, str] = dict(colors or {})
        self._frozen: set[str] = set()
        self._color_breach: set[str] = set()
        book.subscribe(self._on_book)

    def color_of(self, symbol: str) -> str:
        return self._colors.get(symbol, DEFAULT_COLOR)

    def set_color(self, symbol: str, color: str, now_ns: int) -> None:
        """Move ``symbol`` to ``color`` (e.g. a blue/green flip); both colors are re-evaluated."""
        old = self.color_of(symbol)
        self._colors[symbol] = color
        self._eval_color(old, now_ns)
        self._eval_color(color, now_ns)

    def color_net_usd(self, color: str) -> float:
        book = self._book
        return sum(book.position_usd(s) for s in book.symbols() if self.color_of(s) == color)

    def _on_book(self, symbol: str, now_ns: int) -> None:
        if self._sym_limit > 0:
            usd = self._book.position_usd(symbol)
            if (abs(usd) > self._sym_limit) != (symbol in self._frozen):
                self._flip(self._frozen, symbol, now_ns, "pos_skew:freeze", symbol,
                           f"position_usd={fmt_num(usd)} limit_usd={fmt_num(self._sym_limit)}")
        self._eval_color(self.color_of(symbol), now_ns)

    def _eval_color(self, color: str, now_ns: int) -> None:
        if self._color_limit <= 0:
            return
        net = self.color_net_usd(color)
        if (abs(net) > self._color_limit) != (color in self._color_breach):
            self._flip(self._color_breach, color, now_ns, "pos_skew:bias", f"color:{color}",
                       f"net_usd={fmt_num(net)} limit_usd={fmt_num(self._color_limit)}")

    def frozen(self, symbol: str) -> bool:
        return symbol in self._frozen

    def bias_ratio(self, color: str) -> float:
        """``b`` for a breached color (0 when within its limit)."""
        if color not in self._color_breach:
            return 0.0
        net = abs(self.color_net_usd(color))
        excess_ratio = (net - self._color_limit) / self._color_limit
        return min(self._bias_cap, BIAS_MIN_RATIO + BIAS_MIN_RATIO * max(0.0, excess_ratio))

    def size_factor(self, symbol: str, side: int) -> float:
        """Sizing multiplier in ``[1 - bias_cap, 1 + bias_cap]`` for quotes of ``side`` on ``symbol``."""
        color = self.color_of(symbol)
        b = self.bias_ratio(color)
        if b == 0.0:
            return 1.0
        net = self.color_net_usd(color)
        reduces = (net > 0 and side < 0) or (net < 0 and side > 0)
        return 1.0 + b if reduces else 1.0 - b

    def state(self) -> SkewState:
        book = self._book
        return SkewState({s: book.position_usd(s) for s in book.symbols()}, tuple(sorted(self._frozen)),
                         tuple(sorted(self._color_breach)))

    def check(self, action: Action, now_ns: int) -> str | None:
        if action.op == OP_CANCEL or action.symbol not in self._frozen:
            return None
        return "pos_skew:freeze" if self._book.increases_risk(action) else None

    @property
    def checks_orders(self) -> bool:
        """False with the per-symbol limit off: no symbol is ever frozen (the color limit
        only biases sizes, it refuses nothing)."""
        return self._sym_limit > 0

    tracks_sends = False  # on_sent below does nothing: GateChain does not call it

    def on_sent(self, action: Action, now_ns: int) -> None:
        return None


# ----------------------------------------------------------------------------- kill switch
class KillswitchParams(Protocol):
    """The ``killswitch`` section (``KillswitchConfig``, seed "F4 - Canary kill-switch")."""

    @property
    def enabled(self) -> bool: ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def max_reject_delta(self) -> float: ...

    @property
    def max_latency_delta_ms(self) -> int: ...

    @property
    def min_fills(self) -> int: ...

    @property
    def action(self) -> str: ...


class KillSwitch(EventLog):
    """Stops risk-increasing orders (``"killswitch"``) once tripped, until ``reset``.

    Two ways to trip it: ``trip`` (an operator or another component, always effective),
    and ``evaluate_canary``, the seed's canary check, only when ``enabled``: with at least
    ``min_fills`` fills on each color, green's reject rate minus blue's ``>
    max_reject_delta`` fires with reason ``reject_delta``, else green's latency minus
    blue's ``> max_latency_delta_ms`` fires with ``latency_delta``.  In ``dry_run`` a
    firing is only reported (one ``fire`` event with ``dry_run=true`` per episode) and
    nothing is blocked; otherwise the switch trips.  ``action`` (``rollback`` |
    ``freeze``) is carried in the event for the rollout layer, which performs it; the core
    fails safe by not growing exposure in the meantime.
    """

    __slots__ = ("_book", "_cfg", "_tripped", "_reason", "_dry_firing")

    def __init__(self, cfg: KillswitchParams, book: PositionBook) -> None:
        super().__init__()
        if cfg.action not in ("rollback", "freeze"):
            raise ValueError(f"killswitch.action must be rollback or freeze, got {cfg.action!r}")
        if cfg.min_fills < 0 or cfg.max_reject_delta < 0 or cfg.max_latency_delta_ms < 0:
            raise ValueError("killswitch.min_fills, max_reject_delta and max_latency_delta_ms must be >= 0")
        self._book = book
        self._cfg = cfg
        self._tripped = False
        self._reason = "none"
        self._dry_firing = False

    @property
    def tripped(self) -> bool:
        return self._tripped

    def status(self) -> dict[str, object]:
        """The seed's canary payload block: enabled, dry_run, action, fired, reason."""
        c = self._cfg
        return {"enabled": c.enabled, "dry_run": c.dry_run, "action": c.action, "fired": self._tripped,
                "reason": self._reason}

    def trip(self, reason: str, now_ns: int) -> None:
        if not self._tripped:
            self._tripped = True
            self._reason = reason
            self._emit(now_ns, "killswitch", "", "fire", f"reason={reason} action={self._cfg.action} dry_run=false")

    def reset(self, now_ns: int) -> None:
        self._dry_firing = False
        if self._tripped:
            self._tripped = False
            self._emit(now_ns, "killswitch", "", "reset", f"reason={self._reason}")
            self._reason = "none"

    def evaluate_canary(self, now_ns: int, *, fills_blue: int, fills_green: int, reject_rate_blue: float,
                        reject_rate_green: float, latency_ms_blue: float, latency_ms_green: float) -> str:
        """Compare green with blue; returns ``"reject_delta"`` | ``"latency_delta"`` | ``"none"``."""
        c = self._cfg
        if not c.enabled or min(fills_blue, fills_green) < c.min_fills:
            return "none"
        reject_delta = reject_rate_green - reject_rate_blue
        latency_delta = latency_ms_green - latency_ms_blue
        if reject_delta > c.max_reject_delta:
            reason = "reject_delta"
        elif latency_delta > c.max_latency_delta_ms:
            reason = "latency_delta"
        else:
            self._dry_firing = False
            return "none"
        if c.dry_run:
            if not self._dry_firing:
                self._dry_firing = True
                self._emit(now_ns, "killswitch", "", "fire",
                           f"reason={reason} action={c.action} dry_run=true reject_delta={fmt_num(reject_delta)} "
                           f"latency_delta_ms={fmt_num(latency_delta)}")
        else:
            self.trip(reason, now_ns)
        return reason

    def check(self, action: Action, now_ns: int) -> str | None:
        if not self._tripped or action.op == OP_CANCEL:
            return None
        return "killswitch" if self._book.increases_risk(action) else None

    tracks_sends = False  # on_sent below does nothing: GateChain does not call it

    def on_sent(self, action: Action, now_ns: int) -> None:
        return None
