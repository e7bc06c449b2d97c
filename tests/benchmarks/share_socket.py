#!/usr/bin/env python3
"""Hand one inherited listening socket to N processes, as systemd hands greeter.socket to
greeter.service and each greeter-worker@.service (Sockets=): every child gets the same fd 3,
with LISTEN_FDS as given and a LISTEN_PID of its own.

    systemd-socket-activate -l PATH python3 share_socket.py N COMMAND [ARGS...]

bench.py --processes N runs greeterd and the C reference this way. SIGTERM is passed on to
every child; it exits once they all have.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def main() -> int:
    count, command = int(sys.argv[1]), sys.argv[2:]
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.execvp(command[0], command)
        children.append(pid)

    def pass_on(signum: int, frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, pass_on)
    for child in children:
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
