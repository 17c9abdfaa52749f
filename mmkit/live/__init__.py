"""The live engine: the asyncio service that runs the trading core under a wall clock on a
venue (the replay venue by default), with its HTTP surface (metrics, health, admin API),
restart-safe snapshots, alerts and the execution recorder.

This layer may import the core, data, venues, research (the config-to-engine builders),
ops and the I/O helpers; the CLI imports it, never the reverse.
"""
