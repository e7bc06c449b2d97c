"""Client load that runs inside the container, with nothing but Debian's python3.

    python3 - steady SECONDS THREADS [PATH]  greet in a loop from THREADS threads until SECONDS
                                             pass (PATH: another socket than /run/greeter.sock)
    python3 - burst COUNT                connect COUNT clients at once, then send and read all
    python3 - idle-boundary ROUNDS GAP   one greeting, then a pause of GAP seconds give or take
                                         10%, ROUNDS times: pauses that straddle an idle exit

Prints one JSON object: how many were greeted, how many failed, and the first few failures.
The tests read the counts; the exchange is checked byte for byte here.
"""

import json
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


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "steady":
        if len(args) > 2:
            PATH = args[2]
        steady(float(args[0]), int(args[1]))
    elif mode == "burst":
        burst(int(args[0]))
    elif mode == "idle-boundary":
        idle_boundary(int(args[0]), float(args[1]))
    else:
        sys.exit(f"unknown mode {mode}")
