"""Adapters: the ports implemented on real engines (SQLite, memory, in-process, Binance)."""
