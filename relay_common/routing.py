"""The session header: how an L7 proxy keeps a session's calls on one teacher replica.

A proxy cannot read the protobuf body, so every span call carries its session id as gRPC
metadata too; the proxy hashes it (deploy/haproxy/haproxy.cfg, deploy/gateway/), and the
teacher refuses a call whose header and body disagree.

    metadata = ((SESSION_HEADER, session_header_value(session_id)),)
"""

from __future__ import annotations

from urllib.parse import quote

SESSION_HEADER = "x-relay-session"


def session_header_value(session_id: str) -> str:
    """The header's value: the id percent-encoded as UTF-8 (RFC 3986), since metadata values
    must be printable ASCII; ids of unreserved characters (A-Z a-z 0-9 - . _ ~), such as UUIDs,
    are sent as they are."""
    return quote(session_id, safe="")
