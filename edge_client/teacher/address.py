"""Teacher addresses: "HOST:PORT" as the user types it, checked before any connection.

    parse_address("teacher.example.com:50051")   # -> "teacher.example.com:50051"
    parse_address("[::1]:50051")                 # IPv6 hosts go in brackets
    parse_address("localhost")                   # ConfigError: no port

A malformed address fails here, with a message saying what a good one looks like, rather than
as an opaque connection error on the first span.
"""

from __future__ import annotations

import re
import socket

from edge_client.errors import ConfigError
from relay_common.echo import quoted

# A DNS name or IPv4 address, or an IPv6 address in brackets; then a decimal port.
_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")


def parse_address(text: str) -> str:
    """Returns the address, stripped, or raises ConfigError saying what a good one looks like."""
    address = text.strip()
    match = _ADDRESS.fullmatch(address)
    if match is None:
        raise ConfigError(
            f"teacher address {quoted(text)} is not HOST:PORT; give e.g. --teacher localhost:50051 "
            "(IPv6 as [::1]:50051)"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"teacher address {quoted(text)} has port {port}; use a port from 1 to 65535"
        )
    return address


def check_host_exists(address: str) -> None:
    """Raises ConfigError when DNS says the address's host does not exist: a typo, which no
    retry can fix. A lookup that merely cannot be made now (no network) passes: the calls
    then fail as unavailable and the student writes alone, as it does offline."""
    host, port = address.rsplit(":", 1)
    try:
        socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            raise ConfigError(
                f"teacher host {quoted(host)} does not exist ({exc.strerror}); check --teacher, "
                "or use --teacher-free"
            ) from exc
