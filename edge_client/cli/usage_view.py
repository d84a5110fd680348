"""How `relay-edge usage [--session ID] [--json]` looks: rendering only, the ledger decides.

    print_usage(ledger, session_id=None, as_json=False, console=Console())

The JSON form's `usage` objects (and `totals`) have exactly the keys of `Usage.as_dict()`, the
same as `relay-edge ask --json`, so the two can be compared key by key. For one session it also
lists its answers, each with its finish reason ("cancelled": stopped part-way) and its usage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from edge_client.errors import ConfigError
from edge_client.ledger.store import Ledger, SessionRecord, total_usage
from edge_client.relay.usage import Usage
from relay_common.echo import quoted

SHORT_ID = 8  # characters of a session id in the table

# (header, Usage attribute) of the count columns, in table order.
_COUNTS = (
    ("student\ntokens", "student_tokens"),
    ("teacher\ntokens", "teacher_tokens"),
    ("teacher\nread", "draft_tokens"),
    ("command\ntokens", "command_tokens"),
    ("teacher\ncalls", "teacher_calls"),
    ("failed", "teacher_failures"),
    ("retries", "retries"),
    ("fallback\nspans", "fallback_spans"),
    ("fallback\ntokens", "fallback_tokens"),
)


def print_usage(ledger: Ledger, *, session_id: str | None, as_json: bool, console: Console) -> None:
    """Every session (newest first), or the one `session_id` names: its id or a prefix of it
    that no other session shares. ConfigError when it names none or several."""
    records = ledger.sessions() if session_id is None else [_one_session(ledger, session_id)]
    if as_json:
        document = usage_document(records)
        if session_id is not None:
            document["sessions"][0]["answers"] = [
                {
                    "started_at": answer.started_at.isoformat(),
                    "status": answer.status,
                    "finish_reason": answer.finish_reason,
                    "usage": answer.usage.as_dict(),
                }
                for answer in ledger.answers(records[0].session_id)
            ]
        # Plain write: rich would wrap long lines and break the JSON.
        console.file.write(json.dumps(document, ensure_ascii=False) + "\n")
    else:
        console.print(usage_table(records))


def usage_document(records: Sequence[SessionRecord]) -> dict[str, Any]:
    return {
        "sessions": [
            {
                "session_id": record.session_id,
                "started_at": record.started_at.isoformat(),
                "student_model": record.student_model,
                "teacher": record.teacher,
                "policy": record.policy,
                "mode": record.mode,
                "status": record.status,
                "usage": record.usage.as_dict(),
            }
            for record in records
        ],
        "totals": total_usage(records).as_dict(),
    }


def usage_table(records: Sequence[SessionRecord]) -> Table:
    """One row per session, then the totals."""
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=0,  # the box's one-space column separator is gap enough
        caption=None if records else "no sessions yet: `relay-edge ask` records one",
        show_footer=bool(records),
    )
    totals = total_usage(records)
    # Sessions show by their first characters, as git shows commits; --session takes a prefix.
    table.add_column("session", footer="total", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("policy", overflow="fold", min_width=6)
    table.add_column("teacher", overflow="fold", min_width=9)
    for header, name in _COUNTS:
        table.add_column(header, footer=str(getattr(totals, name)), justify="right", min_width=5)
    table.add_column("offload", footer=_ratio(totals), justify="right", min_width=7)
    for record in records:
        table.add_row(
            record.session_id[:SHORT_ID],
            record.started_at.astimezone().strftime("%m-%d %H:%M"),
            record.policy,
            record.teacher,
            *(str(getattr(record.usage, name)) for _, name in _COUNTS),
            _ratio(record.usage),
        )
    return table


def _one_session(ledger: Ledger, session_id: str) -> SessionRecord:
    exact = ledger.session(session_id)
    if exact is not None:
        return exact
    matches = ledger.sessions(prefix=session_id) if session_id else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(
            f"{len(matches)} sessions start with {quoted(session_id)}; give more of the session id"
        )
    raise ConfigError(
        f"no session {quoted(session_id)} in the ledger at {ledger.path}; "
        "`relay-edge usage` lists the sessions"
    )


def _ratio(usage: Usage) -> str:
    return f"{usage.offload_ratio:.2%}"
