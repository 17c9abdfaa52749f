"""The one venue protocol every execution venue implements.

The engine drives a venue in event time: it ``submit``s actions stamped with their local
send time, asks when the next one reaches the exchange (``next_arrival_ns``), lets the
venue process those arrivals (``process_arrivals``), shows it every market event
(``on_market``) and collects the acks, rejects, fills and cancels it produced, each with
its local delivery time (``drain_reports``).  The fill simulator implements it for
backtests and the replay venue; an exchange connector implements it by mapping those
calls onto REST/WebSocket traffic.  The protocol itself lives in ``mmkit.core.engine``
because the pure engine is typed against it; this module is its public home.
"""

from __future__ import annotations

from mmkit.core.engine import Venue
from mmkit.core.types import Ack, Action, AmendOrder, CancelOrder, Canceled, CreateOrder, Fill, Reject, VenueReport

__all__ = ["Venue", "Action", "CreateOrder", "AmendOrder", "CancelOrder", "VenueReport", "Ack", "Reject", "Fill",
           "Canceled"]
