"""Queue-position models for the fill simulator: where our resting order sits in the
FIFO queue at its price, when the market data only shows the level's total size (L2).

Why: a limit order fills only after the orders ahead of it at its price are gone.  With
market-by-price data nobody tells us who left a level when its size drops, so a backtest
must *estimate* the size ahead of us ("ahead", in lots).  The estimate decides the fill
rate, and fill rates decide whether a market-making strategy looks profitable.

The simulator owns the mechanics every model shares (``fillsim.py``):

- joining: at arrival the order goes behind the visible size at its price
  (``on_join(visible_lots)`` -- every shipped model returns exactly that);
- prints: a trade at our price consumes the queue front first (``ahead`` drops by the
  traded lots), then us;
- a trade *through* our price (a sell printed below our bid) means the level was
  exhausted: ``ahead`` becomes 0 and we fill up to the trade's size;
- a level that vanishes puts us first (``ahead`` can never exceed the level's size).

A model decides only what a *size change* at our level means, via ``on_depth(ahead,
prev_lots, new_lots, traded_lots)``: ``prev_lots``/``new_lots`` the level before and after
the book update, ``traded_lots`` the lots printed at our price since the previous update
there (the part of the decrease trades already explain, so it is not counted twice).
Four models ship in ``QUEUE_MODELS``:

``risk_averse`` (default; the benchmark baseline)
    the queue advances only by prints at our price; every unexplained decrease is
    assumed to come from behind us: ``ahead = min(ahead, new_lots)``.  Fills are never
    larger than the volume printed at our price (or through it).
``prob_power`` (parameter ``n``, default 2.0) and ``prob_log``
    an unexplained decrease ``d = prev - new - traded`` is split between the lots ahead
    (``front = ahead``) and behind (``back = prev - traded - ahead``): the share taken
    from behind is ``p = f(back) / (f(back) + f(front))`` with ``f(x) = x ** n``
    (``prob_power``) or ``f(x) = log(1 + x)`` (``prob_log``).  The part of ``p * d`` that
    ``back`` cannot hold comes from the front too.  Cancels are likelier where more size
    sits, the estimator of Rigtorp ("Estimating order queue position", 2013) that
    hftbacktest's probabilistic queue models use; ``n = 1`` splits in proportion to the
    sizes, a larger ``n`` pushes the cancels towards the bigger side (near the back of a
    long queue: slower advance; near the front: faster), ``prob_log`` is the gentlest.
``optimistic``
    every print that touches our price fills the whole remainder, whatever the queue and
    the print's size: an upper bound for comparison, never a forecast.

Estimates are floats for the probabilistic models (fractions of a lot); when a print is
matched against the queue the simulator rounds the estimate *up* to whole lots, so a
fractional estimate never fills us early.

Pure: stdlib only; models are stateless (per-order state lives in the simulator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from mmkit.core.latency import ModelParamError, UnknownModelError, check_keys, number

__all__ = [
    "QueueModel",
    "RiskAverseQueue",
    "ProbQueue",
    "OptimisticQueue",
    "power_prob",
    "log_prob",
    "QUEUE_MODELS",
    "make_queue_model",
]


class QueueModel(Protocol):
    """How the size ahead of our order reacts to book updates at its price."""

    @property
    def name(self) -> str: ...

    @property
    def touch_fills(self) -> bool:
        """True: any print at or through our price fills the whole remainder (optimistic)."""
        ...

    def on_join(self, visible_lots: int) -> float:
        """Lots ahead of an order joining a level that shows ``visible_lots``."""
        ...

    def on_depth(self, ahead: float, prev_lots: int, new_lots: int, traded_lots: int) -> float:
        """Lots ahead after the level went from ``prev_lots`` to ``new_lots``."""
        ...


class RiskAverseQueue:
    """Only prints advance the queue; unexplained decreases are assumed behind us."""

    __slots__ = ()
    name = "risk_averse"
    touch_fills = False

    def __repr__(self) -> str:
        return "RiskAverseQueue()"

    def on_join(self, visible_lots: int) -> float:
        return visible_lots

    def on_depth(self, ahead: float, prev_lots: int, new_lots: int, traded_lots: int) -> float:
        return ahead if ahead <= new_lots else new_lots

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> RiskAverseQueue:
        check_keys(params, (), "risk_averse queue")
        return cls()


def power_prob(n: float) -> Callable[[float, float], float]:
    """``p(front, back) = back**n / (back**n + front**n)``: the share of a decrease from behind."""

    def prob(front: float, back: float) -> float:
        fb = back ** n
        den = fb + front ** n
        return fb / den if den > 0.0 else 1.0

    return prob


def log_prob(front: float, back: float) -> float:
    """``p(front, back) = log1p(back) / (log1p(back) + log1p(front))``."""
    fb = math.log1p(back)
    den = fb + math.log1p(front)
    return fb / den if den > 0.0 else 1.0


class ProbQueue:
    """Probabilistic split of unexplained decreases between ahead and behind (see module doc)."""

    __slots__ = ("name", "_prob", "params")
    touch_fills = False

    def __init__(self, name: str, prob: Callable[[float, float], float],
                 params: Mapping[str, float] | None = None) -> None:
        self.name = name
        self._prob = prob
        self.params = dict(params or {})

    def __repr__(self) -> str:
        return f"ProbQueue({self.name!r}, {self.params})"

    def on_join(self, visible_lots: int) -> float:
        return visible_lots

    def on_depth(self, ahead: float, prev_lots: int, new_lots: int, traded_lots: int) -> float:
        dec = prev_lots - new_lots - traded_lots
        if dec <= 0 or ahead <= 0:
            # an increase joins behind us; a decrease the prints explain moved nothing more
            return ahead if ahead <= new_lots else new_lots
        back = prev_lots - traded_lots - ahead
        if back < 0:
            back = 0
        from_back = self._prob(ahead, back) * dec
        if from_back > back:
            from_back = back
        est = ahead - (dec - from_back)
        if est < 0.0:
            est = 0.0
        return est if est <= new_lots else float(new_lots)

    @classmethod
    def power(cls, params: Mapping[str, Any] | None = None) -> ProbQueue:
        p = check_keys(params, ("n",), "prob_power queue")
        n = number("n", p.get("n", 2.0), 0.0, 100.0)
        if n <= 0.0:
            raise ModelParamError("n", f"must be > 0, got {n}")
        return cls("prob_power", power_prob(n), {"n": n})

    @classmethod
    def log(cls, params: Mapping[str, Any] | None = None) -> ProbQueue:
        check_keys(params, (), "prob_log queue")
        return cls("prob_log", log_prob)


class OptimisticQueue:
    """Fill on touch: any print at or through our price fills the whole remainder."""

    __slots__ = ()
    name = "optimistic"
    touch_fills = True

    def __repr__(self) -> str:
        return "OptimisticQueue()"

    def on_join(self, visible_lots: int) -> float:
        return visible_lots

    def on_depth(self, ahead: float, prev_lots: int, new_lots: int, traded_lots: int) -> float:
        return ahead if ahead <= new_lots else new_lots

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> OptimisticQueue:
        check_keys(params, (), "optimistic queue")
        return cls()


QueueFactory = Callable[[Mapping[str, Any] | None], QueueModel]

QUEUE_MODELS: dict[str, QueueFactory] = {
    "risk_averse": RiskAverseQueue.from_params,
    "prob_power": ProbQueue.power,
    "prob_log": ProbQueue.log,
    "optimistic": OptimisticQueue.from_params,
}
"""Model name -> factory taking the model's parameter mapping (``prob_power``: ``n``)."""


def make_queue_model(name: str, params: Mapping[str, Any] | None = None) -> QueueModel:
    """Build the queue model ``name``; ``UnknownModelError`` lists the known names."""
    factory = QUEUE_MODELS.get(name)
    if factory is None:
        raise UnknownModelError("queue", name, list(QUEUE_MODELS))
    return factory(params)
