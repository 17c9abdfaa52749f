"""Execution venues: the simulator-backed replay venue now, exchange connectors later.

Every venue implements the one ``Venue`` protocol of ``mmkit.venues.base`` (defined in the
pure core so the engine can name it), so backtest, sim and live drive them identically.
This layer may import the core, the data layer and the I/O helpers, never the CLI.
"""
