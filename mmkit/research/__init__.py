"""Research: backtests, walk-forward, sweeps and tuning on recorded data.

Orchestrates the pure core (engine, fill simulator, strategies, stats) with the edges
(config, data readers, artifacts); imports nothing from ``cli``.
"""
