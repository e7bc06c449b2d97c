"""Client load that runs inside the container, with nothing but Debian's python3.

    python3 - steady SECONDS THREADS [PATH]  greet in a loop from THREADS threads until SECONDS
                                             pass (PATH: another socket than /run/greeter.sock)
    python3 - greetings COUNT THREADS    exactly COUNT greetings from THREADS threads in a loop
    python3 - burst COUNT                connect COUNT clients at once, then send and read all
    python3 - idle-boundary ROUNDS GAP   one greeting, then a pause of GAP seconds give or take
                                         10%, ROUNDS times: pauses that straddle an idle exit
    python3 - flood SECONDS UIDS REASONS  for SECONDS, one process per uid (2000, 2001...) sends
                                         names refused for REASONS reasons (1-3) in turn, as
                                         fast as it can, while a probe greets every 50 ms

Prints one JSON object: how many were greeted, how many failed, and the first few failures.
The tests read the counts; the exchange is checked byte for byte here.
"""

import json
import os
import socket
import sys
import threading
import time

PATH = "/run/greeter.sock"


def greet(index: int) -> str | None:
    """One exchange; None when greeted exactly, else what went wrong."""
    name = f"load-{index}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(PATH)
            sock.sendall(name.encode() + b"\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    return None if reply == f"Hello, {name}\n".encode() else f"reply {reply!r}"


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.greeted = 0
        self.failures: list[str] = []

    def add(self, failure: str | None) -> None:
        with self.lock:
            if failure is None:
                self.greeted += 1
            else:
                self.failures.append(failure)

    def report(self, **extra: object) -> None:
        print(
            json.dumps(
                {
                    "greeted": self.greeted,
                    "failed": len(self.failures),
                    "failures": self.failures[:10],
                    **extra,
                }
            )
        )


def steady(seconds: float, threads: int) -> None:
    tally = Tally()
    started = time.monotonic()
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        while time.monotonic() < deadline:
            tally.add(greet(next(counter)))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    tally.report(per_second=round(tally.greeted / (time.monotonic() - started)))


def greetings(count: int, threads: int) -> None:
    """Exactly COUNT greetings, from THREADS threads greeting in a loop."""
    tally = Tally()
    counter = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            tally.add(greet(index))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    tally.report()


def burst(count: int) -> None:
    """All clients connect before any is answered, so they all queue in the backlog."""
    tally = Tally()
    socks = []
    for index in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(PATH)
        sock.sendall(f"load-{index}\n".encode())
        socks.append(sock)
    for index, sock in enumerate(socks):
        try:
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
            tally.add(None if reply == f"Hello, load-{index}\n".encode() else f"reply {reply!r}")
        except OSError as error:
            tally.add(f"{type(error).__name__}: {error}")
        finally:
            sock.close()
    tally.report()


def idle_boundary(rounds: int, gap: float) -> None:
    tally = Tally()
    for index in range(rounds):
        tally.add(greet(index))
        time.sleep(gap * (0.9 + 0.05 * (index % 5)))
    tally.report()


#: Requests greeterd refuses, each for its own reason, and the refusal line it answers with.
REFUSED = [
    (b"\x1b[31mbad\n", b"error: control character in name\n"),
    (b"\xff\n", b"error: invalid UTF-8\n"),
    (b" \n", b"error: empty name\n"),
]
FLOOD_UID = 2000
PROBE_INTERVAL = 0.05


def exchange(request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(PATH)
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def flooder(uid: int, deadline: float, reasons: int, report: int) -> None:
    """A child process that drops to ``uid`` and sends refused names until the deadline; it
    writes how many refusals it saw, and what else it got, to the fd ``report``."""
    os.setgid(uid)
    os.setuid(uid)
    refused, other = 0, list[str]()
    while time.monotonic() < deadline:
        request, expected = REFUSED[refused % reasons]
        try:
            reply = exchange(request)
        except OSError as error:
            reply = f"{type(error).__name__}: {error}".encode()
        if reply == expected:
            refused += 1
        elif len(other) < 10:
            other.append(reply.decode(errors="replace"))
    os.write(report, json.dumps({"uid": uid, "refused": refused, "other": other}).encode())
    os._exit(0)


def flood(seconds: float, uids: int, reasons: int) -> None:
    """Flooders in processes of their own (SO_PEERCRED shows each uid), a probe in this one."""
    deadline = time.monotonic() + seconds
    readers = []
    for index in range(uids):
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            flooder(FLOOD_UID + index, deadline, reasons, write_end)
        os.close(write_end)
        readers.append(read_end)
    tally, latencies = Tally(), []
    index = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        tally.add(greet(index))
        latencies.append(time.monotonic() - started)
        index += 1
        time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))
    flooders = []
    for read_end in readers:
        with os.fdopen(read_end, "rb") as report:
            flooders.append(json.loads(report.read()))
        os.wait()
    latencies.sort()
    tally.report(
        probes=index,
        p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        refused=sum(f["refused"] for f in flooders),
        flooders=flooders,
    )


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "steady":
        if len(args) > 2:
            PATH = args[2]
        steady(float(args[0]), int(args[1]))
    elif mode == "greetings":
        greetings(int(args[0]), int(args[1]))
    elif mode == "burst":
        burst(int(args[0]))
    elif mode == "idle-boundary":
        idle_boundary(int(args[0]), float(args[1]))
    elif mode == "flood":
        flood(float(args[0]), int(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown mode {mode}")
