"""What the kernel says about AF_UNIX sockets, with the standard library only: the tests and
the benchmark (a plain script) both wait with it."""

from __future__ import annotations

import socket
from pathlib import Path

#: /proc/net/unix's flag for a socket that listen() was called on (__SO_ACCEPTCON).
ACCEPTS_CONNECTIONS = 0x10000


def reachable(path: str | Path) -> bool:
    """True once a client can reach the AF_UNIX socket at ``path``: a listening stream or
    seqpacket socket, or a bound datagram socket.

    The file appears at bind(), a moment before listen(); a connect() in between is
    refused, so waiting for the file alone makes a test flaky on a busy machine.
    """
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7] == str(path):  # accepted sockets show the path too
            flags, kind = int(fields[3], 16), int(fields[4], 16)
            if flags & ACCEPTS_CONNECTIONS or kind == socket.SOCK_DGRAM:
                return True
    return False
