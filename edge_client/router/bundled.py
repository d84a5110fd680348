"""Routers that ship inside the package (edge_client/router/shipped/), one per supported
student; each file holds its own provenance (`relay-edge router show FILE`)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("shipped")


def shipped_router(file_name: str) -> Path:
    """The path of a shipped router file."""
    return SHIPPED_DIR / file_name
