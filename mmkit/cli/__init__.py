"""Thin Typer commands: parse options, call one library function, write artifacts.

May import anything below it (orchestration, core, edges); nothing imports ``cli``.
Business logic here is a bug: it belongs in the library so Python callers get it too.
"""
