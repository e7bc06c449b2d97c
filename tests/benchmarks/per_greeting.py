#!/usr/bin/env python3
"""What one greeting costs greeterd beyond the Python floor, measured in one process.

    python3 tests/benchmarks/per_greeting.py            300 rounds (about 30 s)
    python3 tests/benchmarks/per_greeting.py --quick    a short run that only checks replies

bench.py measures whole servers under load, where the load generator shares the CPUs with
the server and ratios move by several percent between runs. This takes the client out of
the timing: each round queues CLIENTS connections that have sent their name, then times one
accept batch answering all of them, in turn for:

- the Python floor's accept loop (peers/python_floor.py): no validation, counters or bounds;
- the floor's loop with the least work any check of a name needs (decode the UTF-8, look for
  unprintable characters, trim, encode again);
- the floor's loop answering through greeterd's protocol module (find_request, parse_name,
  format_reply): what validating and framing a name adds;
- greeterd's Server, one batch as its loop calls it.

The rounds alternate between the four, and each ratio is the median of the round-by-round
ratios to the floor. Run it with the interpreter and the greeterd you mean to measure; from a
checkout, `.venv/bin/python tests/benchmarks/per_greeting.py`.
"""

from __future__ import annotations

import _socket
import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
# A peer, not a package: mypy checks the file, but cannot follow this sys.path entry.
from python_floor import accept_ready, answer  # type: ignore[import-not-found]  # noqa: E402

from greeterd import protocol  # noqa: E402
from greeterd.activation import LISTENER, Endpoint  # noqa: E402
from greeterd.log import INFO, Log  # noqa: E402
from greeterd.server import Server  # noqa: E402

#: Clients answered per timed batch: within the server's ACCEPT_BATCH, so one call serves all.
CLIENTS = 200
NAME = "Zoë"  # the benchmark's name everywhere: one non-ASCII letter, as loadgen.c sends
REPLY = f"Hello, {NAME}\n".encode()


class Discard:
    """A log outlet that takes every line (nothing is logged on this path anyway)."""

    structured = False

    def send(self, data: bytes) -> bool:
        return True


def answer_with_checks(sock: _socket.socket, read_flags: int = 0) -> None:
    """The floor's answer(), plus the least any check of a name costs: decoding the UTF-8,
    looking for unprintable characters, trimming, and encoding the name again."""
    text = sock.recv(1026, read_flags).split(b"\n", 1)[0].decode()
    assert text.isprintable()
    sock.send(b"Hello, " + text.strip().encode() + b"\n", _socket.MSG_DONTWAIT)
    sock.close()


def answer_with_protocol(sock: _socket.socket, read_flags: int = 0) -> None:
    """The floor's answer(), with greeterd's protocol module doing the framing and checks."""
    data = sock.recv(protocol.MAX_REQUEST_BYTES, read_flags)
    line = protocol.find_request(data, not data)
    assert line is not None
    sock.send(protocol.format_reply(protocol.parse_name(line)), _socket.MSG_DONTWAIT)
    sock.close()


def never_park(sock: _socket.socket) -> None:
    raise AssertionError("every client sent its name before the batch")


def timed_batch(path: str, serve: Callable[[], object]) -> float:
    """Queue CLIENTS clients with their names sent, time serve(), check every reply; return
    microseconds per greeting."""
    request = f"{NAME}\n".encode()
    clients = []
    for _ in range(CLIENTS):
        client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        client.connect(path)
        client.send(request)
        clients.append(client)
    started = time.perf_counter_ns()
    serve()
    elapsed = time.perf_counter_ns() - started
    for client in clients:
        reply = client.recv(64)
        assert reply == REPLY, f"got {reply!r}"
        client.close()
    return elapsed / CLIENTS / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds: check the replies only")
    parser.add_argument("--rounds", type=int, default=300, help="timed rounds (default 300)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="gpg-", dir="/tmp") as directory:
        path = f"{directory}/g.sock"
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(4096)
        listener.setblocking(False)
        accept = listener._accept  # type: ignore[attr-defined]
        fd = listener.fileno()
        server = Server([Endpoint(listener, "bench", LISTENER)], Log(INFO, Discard()), len)
        contenders = {
            "Python floor": lambda: accept_ready(accept, never_park, answer),
            "floor + the name's checks": lambda: accept_ready(
                accept, never_park, answer_with_checks
            ),
            "floor + greeterd's protocol module": lambda: accept_ready(
                accept, never_park, answer_with_protocol
            ),
            "greeterd (Server, one accept batch)": lambda: server.accept_batch(fd),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, serve in contenders.items():
                times[name].append(timed_batch(path, serve))
        assert server.greeted == rounds * CLIENTS, "greeterd did not count every greeting"
        listener.close()
    if args.quick:
        print(f"per_greeting: {rounds} rounds, every reply checked")
        return 0
    floor = times["Python floor"]
    print(f"{rounds} rounds of {CLIENTS} greetings; {sys.version.split()[0]}")
    print("| | µs per greeting (median) | ratio to the floor (median of rounds) |")
    print("|---|---|---|")
    for name, series in times.items():
        ratio = statistics.median(t / f for t, f in zip(series, floor, strict=True))
        print(f"| {name} | {statistics.median(series):.2f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
