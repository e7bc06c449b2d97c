"""What the tests and the benchmark share, with the standard library only: the benchmark is a
plain script that any python3 runs, without pytest."""

from __future__ import annotations

import resource
import socket
from pathlib import Path

#: Files a process has open besides the sockets it counts: the interpreter, pytest or the
#: benchmark, pipes to its children.
SPARE_FDS = 256


def raise_open_files(sockets: int) -> str | None:
    """Let this process (and its children) hold ``sockets`` more fds: raise the soft
    RLIMIT_NOFILE to the hard one. Return why that is not enough, or None.

    A stock Debian login shell has a soft limit of 1024 and a hard one of 524288, so whatever
    holds thousands of sockets raises its own, as any program that needs them must.
    """
    needed = sockets + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return f"needs {needed} open files, the hard limit (ulimit -Hn) is {hard}"
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return None


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
