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
    python3 - idle-flood SECONDS PROCESSES EACH PROBE_UID PID [varlink]
                                         for SECONDS, PROCESSES processes of nobody (65534)
                                         each keep EACH connections open, send nothing and
                                         reopen each one greeterd closes; meanwhile, as
                                         PROBE_UID, a raw client and greeter-client's own
                                         exchange() take turns greeting, one every 50 ms,
                                         and the greeter-client command every 40 probes
                                         (varlink: raw Varlink calls only, every 50 ms);
                                         greeterd's (PID's) RSS is sampled

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


def greet(index: int, *, blocking_connect: bool = False) -> str | None:
    """One exchange; None when greeted exactly, else what went wrong. With blocking_connect,
    connect() waits in a full backlog as a plain client's does, where a socket with a timeout
    fails at once with EAGAIN."""
    name = f"load-{index}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            if not blocking_connect:
                sock.settimeout(30)
            sock.connect(PATH)
            sock.settimeout(30)
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


TOO_MANY = b"error: too many clients of this user waiting\n"
TIMED_OUT = b"error: timed out waiting for a name\n"
VARLINK_PATH = "/run/io.greeterd.Greeter"
FLOOD_USER = 65534


def idle_flooder(count: int, deadline: float, path: str, report: int) -> None:
    """A child process of nobody that keeps ``count`` silent connections to ``path`` open,
    reopening each one greeterd closes, until the deadline; it writes what greeterd answered
    (by kind) to the fd ``report``."""
    import resource  # noqa: PLC0415
    import select  # noqa: PLC0415

    os.setgid(FLOOD_USER)
    os.setuid(FLOOD_USER)
    # As any user may: the soft limit up to the hard one (a stock login gets 1024 soft).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    poller = select.epoll()
    open_socks: dict[int, socket.socket] = {}
    seen = {"opened": 0, "too_many": 0, "timed_out": 0, "closed_silently": 0, "full": 0}
    other: list[str] = []

    def reopen() -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:  # the backlog is full: try again on the next turn
            sock.close()
            seen["full"] += 1
            return False
        open_socks[sock.fileno()] = sock
        poller.register(sock.fileno(), select.EPOLLIN)
        seen["opened"] += 1
        return True

    missing = count
    while time.monotonic() < deadline:
        while missing and reopen():
            missing -= 1
        for fd, _ in poller.poll(0.01 if missing else 0.2):
            sock = open_socks.pop(fd)
            try:
                reply = sock.recv(4096)
            except OSError as error:
                reply = str(error).encode()
            poller.unregister(fd)
            sock.close()
            missing += 1
            if reply == TOO_MANY or b"TooManyClients" in reply:
                seen["too_many"] += 1
            elif reply == TIMED_OUT:
                seen["timed_out"] += 1
            elif not reply:
                seen["closed_silently"] += 1
            elif len(other) < 5:
                other.append(reply.decode(errors="replace"))
    os.write(report, json.dumps({**seen, "other": other}).encode())
    os._exit(0)


def rss_sampler(pid: int, deadline: float, report: int) -> None:
    """A child that reads greeterd's VmRSS (KiB) every 0.2 s; writes the samples."""
    samples = []
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]))
        except OSError:
            samples.append(-1)
        time.sleep(0.2)
    os.write(report, json.dumps(samples).encode())
    os._exit(0)


def varlink_greet(index: int) -> str | None:
    """One raw Varlink Greet call; None when greeted exactly."""
    name = f"load-{index}"
    call = json.dumps({"method": "io.greeterd.Greeter.Greet", "parameters": {"name": name}})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(VARLINK_PATH)  # blocking: it waits in a full backlog
            sock.settimeout(30)
            sock.sendall(call.encode() + b"\0")
            reply = b""
            while not reply.endswith(b"\0"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    expected = {"parameters": {"greeting": f"Hello, {name}"}}
    try:
        return None if json.loads(reply[:-1]) == expected else f"reply {reply!r}"
    except ValueError:
        return f"reply {reply!r}"


def blocking_greet(index: int) -> str | None:
    return greet(index, blocking_connect=True)


def client_exchange(index: int) -> str | None:
    """greeter-client's own exchange() (its connect, wait and read), without the start of
    an interpreter: None when greeted exactly."""
    from greeterd import client  # noqa: PLC0415

    name = f"load-{index}"
    try:
        greeting = client.exchange(PATH, f"{name}\n".encode(), 10.0)
    except client.Failure as failure:
        return f"greeter-client: {failure} ({failure.status})"
    return None if greeting == f"Hello, {name}" else f"greeting {greeting!r}"


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 1)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


def idle_flood(
    seconds: float, processes: int, each: int, probe_uid: int, pid: int, *, varlink: bool
) -> None:
    import subprocess  # noqa: PLC0415

    started = time.monotonic()
    deadline = started + seconds
    readers = []
    path = VARLINK_PATH if varlink else PATH
    for _ in range(processes):
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            idle_flooder(each, deadline, path, write_end)
        os.close(write_end)
        readers.append(read_end)
    rss_read, rss_write = os.pipe()
    if os.fork() == 0:
        rss_sampler(pid, deadline + 1, rss_write)
    os.close(rss_write)
    time.sleep(2)  # the flood takes greeterd's places before the first probe
    os.setgid(probe_uid)
    os.setuid(probe_uid)
    kinds = {"raw": varlink_greet if varlink else blocking_greet}
    if not varlink:
        kinds["greeter-client exchange()"] = client_exchange
    tallies = {kind: Tally() for kind in kinds}
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    commands, command_failures = 0, []
    index = 0
    while time.monotonic() < deadline:
        for kind, probe in kinds.items():
            began = time.monotonic()
            tallies[kind].add(probe(index))
            latencies[kind].append(time.monotonic() - began)
            index += 1
            time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - began)))
        if not varlink and index % 40 == 0:  # now and then, the command itself
            done = subprocess.run(
                ["greeter-client", "--name", f"cmd-{index}"],
                capture_output=True,
                text=True,
                check=False,
            )
            commands += 1
            if done.returncode != 0 or done.stdout != f"Hello, cmd-{index}\n":
                command_failures.append(f"{done.returncode}: {done.stdout}{done.stderr}")
    flooders = []
    for read_end in readers:
        with os.fdopen(read_end, "rb") as report:
            flooders.append(json.loads(report.read()))
    with os.fdopen(rss_read, "rb") as report:
        rss = json.loads(report.read())
    for _ in range(processes + 1):
        os.wait()
    totals = {key: sum(f[key] for f in flooders) for key in flooders[0] if key != "other"}
    print(
        json.dumps(
            {
                "seconds": round(time.monotonic() - started, 1),
                "probes": {
                    kind: {
                        "greeted": tallies[kind].greeted,
                        "failed": len(tallies[kind].failures),
                        "failures": tallies[kind].failures[:5],
                        **percentiles(latencies[kind]),
                    }
                    for kind in kinds
                },
                "commands": commands,
                "command_failures": command_failures[:5],
                "flood": totals,
                "flood_other": [o for f in flooders for o in f["other"]][:5],
                "rss_kib": {"first": rss[0], "max": max(rss), "last": rss[-1]},
            }
        )
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
    elif mode == "idle-flood":
        numbers = [int(arg) for arg in args[1:5]]
        idle_flood(float(args[0]), *numbers, varlink=args[5:] == ["varlink"])
    else:
        sys.exit(f"unknown mode {mode}")
