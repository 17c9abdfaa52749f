"""The pure domain core: book, signals, strategy, orders, risk, allocator, fees, fill
simulator, ledger, stats and the engine.

Imports only the standard library and other ``mmkit.core`` modules: no I/O, no wall
clock (time is passed in), no global randomness (a seeded ``random.Random`` is passed in).
``tests/test_layering.py`` enforces this, so backtest, sim and live share one brain.
"""
