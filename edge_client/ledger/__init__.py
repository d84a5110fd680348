"""Durable per-session accounting in SQLite: `Ledger` records relay events as they happen."""
