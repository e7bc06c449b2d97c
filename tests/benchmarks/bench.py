#!/usr/bin/env python3
"""greeterd's benchmark: greeterd, a C reference, the Python floor and two stdlib peers, all
socket-activated.

    python3 tests/benchmarks/bench.py                  the full run
    python3 tests/benchmarks/bench.py --baseline DIR   with DIR's greeterd beside (19 min here)
    python3 tests/benchmarks/bench.py --quick          a short run that only checks correctness
    python3 tests/benchmarks/bench.py --processes N    also N greeterd and N C reference
                                                       processes sharing one socket

Every server runs under systemd-socket-activate, the way systemd starts it, and is measured
in turn, round after round (A B C D A B C D ...), so that a machine whose speed drifts hurts
all of them alike; figures are medians over rounds, and ratios are taken round by round
against the C reference measured in the same round. The load comes from loadgen.c, a C
client that checks every reply byte for byte, so the client is not what limits the rate.

Needs gcc, systemd-socket-activate, ss (iproute2) and the build dependencies of
systemd-python (libsystemd-dev, pkg-config); tests/run installs them. The servers' Python
is a fresh virtualenv made from the interpreter running this script, with greeterd installed
from this checkout (not editable), as a user would have it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The checkout, for tests/stdlib_helpers.py: this file runs as a plain script.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from greeterd.server import MAX_CLIENTS_PER_UID
from tests.stdlib_helpers import raise_open_files, reachable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IDLE_CLIENTS = 5000
#: greeterd installed from the checkout given with --baseline: before and after, one run.
BASELINE = "greeterd, baseline"
#: The peer that is greeterd's fast path and nothing else (peers/python_floor.py).
FLOOR = "Python floor"
#: The user whose clients fill their share and are then turned away (greeterd exempts root).
FLOOD_UID = 65534
#: Calls per connection for the "many calls" Varlink row: a client that keeps its connection.
VARLINK_CALLS = 1000


@dataclass
class Settings:
    rounds: int
    seconds: float
    cold_runs: int
    idle_clients: int


FULL = Settings(rounds=5, seconds=2.0, cold_runs=21, idle_clients=IDLE_CLIENTS)
QUICK = Settings(rounds=1, seconds=0.5, cold_runs=3, idle_clients=200)


@dataclass
class Server:
    name: str
    command: list[str]
    holds_idle_clients: bool = True  # False: a thread or process per client; 5,000 is no test
    activate_flags: tuple[str, ...] = ()  # ("--accept", ...): a process per client, no RSS
    #: The loadgen mode (and its extra arguments) that loads it: greetings on the line
    #: protocol, or Varlink calls ("varlink", CALLS per connection).
    load: tuple[str, ...] = ("rate",)
    #: Processes sharing the one listening socket (share_socket.py hands it to each).
    processes: int = 1
    results: dict[str, list[float]] = field(default_factory=dict)

    def record(self, metric: str, value: float) -> None:
        self.results.setdefault(metric, []).append(value)

    def median(self, metric: str) -> float | None:
        values = self.results.get(metric)
        return statistics.median(values) if values else None


class Failed(Exception):
    """A server or client misbehaved: the benchmark's figures would be meaningless."""


def run(command: list[str], **kwargs: object) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise Failed(
            f"{' '.join(map(str, command))} exited {done.returncode}: {done.stderr.strip()}"
        )
    return str(done.stdout)


def build(work: Path) -> Path:
    """Compile the C programs; return their directory."""
    binaries = work / "bin"
    binaries.mkdir()
    for name, extra in (("loadgen", ["-pthread"]), ("reference_server", [])):
        run(["gcc", "-O2", "-Wall", *extra, "-o", str(binaries / name), str(HERE / f"{name}.c")])
    return binaries


def virtualenv(venv: Path, checkout: Path) -> Path:
    """A virtualenv with greeterd installed from ``checkout`` (not editable); return it."""
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "--quiet", str(checkout)], timeout=600)
    return venv


# -- one server under systemd-socket-activate ---------------------------------------------


class Running:
    """A server started the socket-activation way; it execs on the first connection."""

    def __init__(self, server: Server, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        command = server.command
        if server.processes > 1:
            share = [sys.executable, str(HERE / "share_socket.py"), str(server.processes)]
            command = [*share, *command]
        self.process = subprocess.Popen(
            ["systemd-socket-activate", *server.activate_flags, "-l", str(path), *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable(path):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise Failed(f"systemd-socket-activate did not listen on {path}")
            time.sleep(0.001)

    @property
    def pid(self) -> int:
        return self.process.pid  # systemd-socket-activate exec()s the server: same pid

    def cpu_seconds(self) -> float:
        """CPU time of the server, with its children: reaped ones (Accept=yes: one per client)
        and running ones (the processes share_socket.py started)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        ticks = cpu_ticks(self.pid, reaped=True)
        for child in children:
            # One that exited meanwhile is counted with the reaped, once reaped. It may be
            # gone before its stat is opened (ENOENT) or between open and read (ESRCH).
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                ticks += cpu_ticks(int(child), reaped=False)
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise Failed("no VmRSS")

    def backlog(self) -> int:
        """The listen queue size ss reports for our socket (Send-Q of a listening socket)."""
        for line in run(["ss", "-xlnH"]).splitlines():
            fields = line.split()
            if str(self.path) in fields:
                return int(fields[3])
        raise Failed(f"{self.path} is not listening")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.path.unlink(missing_ok=True)


def cpu_ticks(pid: int, reaped: bool) -> int:
    """utime + stime of a process, with its reaped children's (cutime + cstime) if asked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if reaped else (11, 12)))


class Bench:
    def __init__(
        self,
        binaries: Path,
        venv: Path,
        work: Path,
        settings: Settings,
        *,
        baseline: Path | None = None,
        processes: int = 1,
    ) -> None:
        self.loadgen = str(binaries / "loadgen")
        self.python = str(venv / "bin" / "python")
        self.work = work
        self.settings = settings
        greeterd = str(venv / "bin" / "greeterd")
        self.processes = processes
        self.servers = [
            Server("C reference (epoll)", [str(binaries / "reference_server")]),
            Server("greeterd", [greeterd]),
            *(self.baseline_servers(baseline) if baseline else []),
            Server(
                FLOOR,
                [self.python, str(HERE / "peers" / "python_floor.py")],
                holds_idle_clients=False,
            ),
            # The floor started without site: the least a Python server's cold start can be,
            # beside `python3 -I -c pass` (see Performance, start-up).
            Server(
                f"{FLOOR}, -IS",
                [self.python, "-IS", str(HERE / "peers" / "python_floor.py")],
                holds_idle_clients=False,
            ),
            Server(
                "greeterd, Accept=yes",
                [greeterd],
                holds_idle_clients=False,
                activate_flags=("--accept", "--fdname=connection"),
            ),
            # The Debian package's launcher runs python3 -IS (no site); pip drops the flags.
            Server("greeterd, -IS (as the .deb)", [self.python, "-IS", greeterd]),
            Server(
                "greeterd, Accept=yes, -IS",
                [self.python, "-IS", greeterd],
                holds_idle_clients=False,
                activate_flags=("--accept", "--fdname=connection"),
            ),
            # io.greeterd.Greeter.Greet calls on a socket named "varlink": many calls on
            # each connection, then one call per connection.
            *(
                Server(
                    f"greeterd, Varlink, {calls} call{'s' if calls > 1 else ''} per connection",
                    [greeterd],
                    holds_idle_clients=False,
                    activate_flags=("--fdname=varlink",),
                    load=("varlink", str(calls)),
                )
                for calls in (VARLINK_CALLS, 1)
            ),
            Server("asyncio streams", [self.python, str(HERE / "peers" / "asyncio_streams.py")]),
            Server(
                "socketserver threads",
                [self.python, str(HERE / "peers" / "threading_socketserver.py")],
                holds_idle_clients=False,
            ),
            *(self.shared_servers(binaries, greeterd) if processes > 1 else []),
        ]
        self.interpreter: list[float] = []

    def shared_servers(self, binaries: Path, greeterd: str) -> list[Server]:
        """The C reference and greeterd, each as ``processes`` processes sharing one socket,
        as greeter.service and its workers share greeter.socket."""
        return [
            Server(
                shared_name(name, self.processes),
                command,
                holds_idle_clients=False,  # the idle clients would spread over the processes
                processes=self.processes,
            )
            for name, command in (
                ("C reference (epoll)", [str(binaries / "reference_server")]),
                ("greeterd", [greeterd]),
            )
        ]

    @staticmethod
    def baseline_servers(baseline: Path) -> list[Server]:
        """The baseline as pip installs it, as the .deb starts it (-IS), and with Accept=yes,
        which pays a start per client: a change to start-up shows there, before and after."""
        python, greeterd = str(baseline / "bin" / "python"), str(baseline / "bin" / "greeterd")
        return [
            Server(BASELINE, [greeterd]),
            Server(f"{BASELINE}, -IS", [python, "-IS", greeterd]),
            Server(
                f"{BASELINE}, Accept=yes, -IS",
                [python, "-IS", greeterd],
                holds_idle_clients=False,
                activate_flags=("--accept", "--fdname=connection"),
            ),
        ]

    def path(self) -> Path:
        return self.work / "bench.sock"

    def rate(
        self, running: Running, clients: int, load: tuple[str, ...] = ("rate",)
    ) -> tuple[float, float, float, float]:
        """(greetings/s, p50 µs, p99 µs, server CPU µs per greeting) for closed-loop clients;
        with load ("refuse",), the same for names the server refuses (a flood of refusals);
        with ("varlink", CALLS), for Varlink calls."""
        cpu = running.cpu_seconds()
        mode, *extra = load
        seconds = str(self.settings.seconds)
        output = run([self.loadgen, mode, str(running.path), str(clients), seconds, *extra])
        spent = running.cpu_seconds() - cpu
        count, errors, p50, p99 = (int(x) for x in output.split())
        if errors or not count:
            raise Failed(f"{errors} bad replies out of {count + errors}")
        return count / self.settings.seconds, p50, p99, spent / count * 1e6

    def with_idle(self, running: Running, idle: int) -> subprocess.Popen[str]:
        """Start a loadgen that holds ``idle`` silent connections; returns once they are open."""
        holder = subprocess.Popen(
            [self.loadgen, "hold", str(running.path), str(idle), str(self.settings.seconds + 1.5)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        line = holder.stdout.readline()
        if not line.startswith("held"):
            holder.kill()
            raise Failed(f"could not hold {idle} idle connections: {line!r}")
        time.sleep(0.2)  # let the server accept them
        return holder

    def measure_rates(self, running: dict[str, Running]) -> None:
        """One round of closed-loop rates: every server at 16 clients, then every server at
        128, back to back, so each ratio to C compares figures taken seconds apart."""
        for clients in (16, 128):
            for server in self.servers:
                rate, p50, p99, cpu = self.rate(running[server.name], clients, server.load)
                server.record(f"rate_{clients}", rate)
                server.record(f"p50_{clients}", p50)
                server.record(f"p99_{clients}", p99)
                server.record(f"cpu_{clients}", cpu)
        for server in self.refusing():
            rate, _, _, cpu = self.rate(running[server.name], 16, ("refuse",))
            server.record("refuse_16", rate)
            server.record("refuse_cpu_16", cpu)
        for server in self.sharing():
            self.measure_share(server, running[server.name])

    def sharing(self) -> list[Server]:
        """The servers with a per-user share (this checkout's greeterd, one process), when
        this script can flood as another user: it runs as root."""
        if os.geteuid() != 0:
            return []
        return [s for s in self.refusing() if not s.name.startswith(BASELINE)]

    def measure_share(self, server: Server, running: Running) -> None:
        """Refusals past the share: FLOOD_UID holds its share of silent clients, then 16
        closed-loop clients of FLOOD_UID connect, send nothing and are turned away at once:
        the rate at which greeterd drains such a flood from its backlog."""
        flood = dict(os.environ, LOADGEN_UID=str(FLOOD_UID))
        self.work.chmod(0o755)  # the flooding user reaches the socket, as on a real host
        running.path.chmod(0o666)
        holder = subprocess.Popen(
            [
                self.loadgen,
                "hold",
                str(running.path),
                str(MAX_CLIENTS_PER_UID),
                str(self.settings.seconds + 1.5),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=flood,
        )
        assert holder.stdout is not None
        if not holder.stdout.readline().startswith("held"):
            holder.kill()
            raise Failed(f"{FLOOD_UID} could not hold its share of {MAX_CLIENTS_PER_UID}")
        time.sleep(0.3)  # let the server accept them
        cpu = running.cpu_seconds()
        output = run(
            [self.loadgen, "share", str(running.path), "16", str(self.settings.seconds)],
            env=flood,
        )
        spent = running.cpu_seconds() - cpu
        holder.wait()
        count, errors, _, p99 = (int(x) for x in output.split())
        if errors or not count:
            raise Failed(f"past the share: {errors} bad replies out of {count + errors}")
        server.record("share_16", count / self.settings.seconds)
        server.record("share_p99_16", p99)
        server.record("share_cpu_16", spent / count * 1e6)

    def refusing(self) -> list[Server]:
        """The servers that check names (greeterd's), one process for all clients."""
        return [
            s
            for s in self.servers
            if s.name.startswith("greeterd") and not s.activate_flags and s.processes == 1
        ]

    def measure_quiet_clients(self, server: Server, running: Running) -> None:
        """The rate at 16 with one silent client held, and with IDLE_CLIENTS held, each as a
        change from the rate measured just before it; and the memory the idle ones cost."""
        base = self.rate(running, 16, server.load)[0]
        holder = self.with_idle(running, 1)
        server.record("silent_change", self.rate(running, 16, server.load)[0] / base - 1)
        holder.wait()
        if not server.holds_idle_clients:
            return
        idle = self.settings.idle_clients
        base = self.rate(running, 16)[0]
        before = running.rss_kib()
        holder = self.with_idle(running, idle)
        held = running.rss_kib()
        server.record("idle_change", self.rate(running, 16)[0] / base - 1)
        server.record("rss_held_kib", held)
        server.record("bytes_per_idle", (held - before) * 1024 / idle)
        holder.wait()
        time.sleep(0.5)  # the server sees them close
        server.record("rss_after_idle_kib", running.rss_kib())

    def measure_cold(self) -> None:
        """Cold activations, alternating servers with a bare interpreter start."""
        for _ in range(self.settings.cold_runs):
            self.interpreter.append(
                float(run([self.loadgen, "exec", self.python, "-I", "-c", "pass"])) / 1000
            )
            for server in self.servers:
                if server.load != ("rate",) or server.processes > 1:
                    continue  # loadgen once greets on the line protocol only
                running = Running(server, self.path())
                try:
                    server.record(
                        "cold_ms", float(run([self.loadgen, "once", str(running.path)])) / 1000
                    )
                finally:
                    running.stop()

    def run(self) -> None:
        """All servers run side by side on their own sockets (an idle one costs nothing),
        so that rounds of rates can alternate between them closely."""
        running: dict[str, Running] = {}
        try:
            for number, server in enumerate(self.servers):
                running[server.name] = started = Running(server, self.work / f"{number}.sock")
                if server.load == ("rate",):
                    run([self.loadgen, "once", str(started.path)])  # activate it
                for _ in range(3):
                    self.rate(started, 16, server.load)  # warm-up (and activation)
                # With --accept it would be the activator's RSS; with processes, the sharer's.
                if not server.activate_flags and server.processes == 1:
                    server.record("rss_idle_kib", started.rss_kib())
                server.record("backlog", started.backlog())
            for number in range(self.settings.rounds):
                print(f"round {number + 1}/{self.settings.rounds}", file=sys.stderr, flush=True)
                self.measure_rates(running)
                for server in self.servers:
                    self.measure_quiet_clients(server, running[server.name])
        finally:
            for started in running.values():
                started.stop()
        self.measure_cold()

    def ratio(self, server: Server, metric: str, reference_name: str = "") -> float | None:
        """Median over rounds of this server's figure divided by the reference's (C's, unless
        named) in the same round."""
        chosen = next((s for s in self.servers if s.name == reference_name), self.servers[0])
        reference = chosen.results.get(metric, [])
        mine = server.results.get(metric, [])
        pairs = [m / r for m, r in zip(mine, reference, strict=False) if r]
        return statistics.median(pairs) if pairs else None

    def report(self) -> str:
        python_ms = statistics.median(self.interpreter)
        lines = [
            f"Machine: {machine()}",
            f"Run: {self.settings.rounds} rounds of {self.settings.seconds:g} s per figure, "
            f"{self.settings.cold_runs} cold starts per server; medians. "
            f"`python3 -I -c pass` (the servers' interpreter): {python_ms:.1f} ms.",
            "",
            "| server | greetings/s at 16 | ratio to C | at 128 | ratio to C "
            "| p50 / p99 at 16 (µs) | server CPU per greeting (µs) "
            "| rate change with 1 silent client "
            f"| with {self.settings.idle_clients} idle "
            "| cold activation (ms) | cold / python -I -c pass | RSS idle (MiB) "
            f"| RSS with {self.settings.idle_clients} idle (MiB) | per idle client (B) "
            "| RSS after they left (MiB) | listen backlog after start |",
            "|---" * 16 + "|",
        ]
        for server in self.servers:
            lines.append(
                "| "
                + " | ".join(
                    [
                        server.name,
                        fmt(server.median("rate_16"), "{:,.0f}"),
                        fmt(self.ratio(server, "rate_16"), "{:.2f}"),
                        fmt(server.median("rate_128"), "{:,.0f}"),
                        fmt(self.ratio(server, "rate_128"), "{:.2f}"),
                        latency(server),
                        fmt(server.median("cpu_16"), "{:.1f}"),
                        change(server.median("silent_change")),
                        change(server.median("idle_change")),
                        fmt(server.median("cold_ms"), "{:.1f}"),
                        fmt(ratio_of(server.median("cold_ms"), python_ms), "{:.2f}"),
                        fmt(kib_to_mib(server.median("rss_idle_kib")), "{:.1f}"),
                        fmt(kib_to_mib(server.median("rss_held_kib")), "{:.1f}"),
                        fmt(server.median("bytes_per_idle"), "{:,.0f}"),
                        fmt(kib_to_mib(server.median("rss_after_idle_kib")), "{:.1f}"),
                        fmt(server.median("backlog"), "{:.0f}"),
                    ]
                )
                + " |"
            )
        lines += [
            "",
            "| against the Python floor, same round | rate at 16 | rate at 128 "
            "| CPU per greeting at 16 | CPU per greeting at 128 |",
            "|---|---|---|---|---|",
        ]
        for server in self.refusing():
            ratios = (
                fmt(self.ratio(server, metric, FLOOR), "{:.2f}")
                for metric in ("rate_16", "rate_128", "cpu_16", "cpu_128")
            )
            lines.append(f"| {server.name} | {' | '.join(ratios)} |")
        lines += [
            "",
            "| a flood of refused names, 16 clients | refusals/s | ratio to its greetings/s "
            "| server CPU per refusal (µs) |",
            "|---|---|---|---|",
        ]
        for server in self.refusing():
            figures = (
                fmt(server.median("refuse_16"), "{:,.0f}"),
                fmt(ratio_of(server.median("refuse_16"), server.median("rate_16")), "{:.2f}"),
                fmt(server.median("refuse_cpu_16"), "{:.1f}"),
            )
            lines.append(f"| {server.name} | {' | '.join(figures)} |")
        lines += [
            "",
            f"| past the share: uid {FLOOD_UID} holds {MAX_CLIENTS_PER_UID} silent clients, "
            "16 more connect and send nothing | refusals/s | p99 (µs) "
            "| server CPU per refusal (µs) |",
            "|---|---|---|---|",
        ]
        for server in self.sharing():
            figures = (
                fmt(server.median("share_16"), "{:,.0f}"),
                fmt(server.median("share_p99_16"), "{:.0f}"),
                fmt(server.median("share_cpu_16"), "{:.1f}"),
            )
            lines.append(f"| {server.name} | {' | '.join(figures)} |")
        if self.processes > 1:
            lines += self.shared_report()
        return "\n".join(lines)

    def shared_report(self) -> list[str]:
        """greeterd and the C reference as N processes sharing one socket, against one."""
        n = self.processes
        lines = [
            "",
            f"| {n} processes sharing one socket | greetings/s at 16 | at 128 "
            f"| ratio to C with {n} processes at 128 | ratio to 1 process at 128 "
            "| server CPU per greeting at 128 (µs) |",
            "|---|---|---|---|---|---|",
        ]
        c_shared = shared_name("C reference (epoll)", n)
        for name in ("C reference (epoll)", "greeterd"):
            server = next(s for s in self.servers if s.name == shared_name(name, n))
            figures = (
                fmt(server.median("rate_16"), "{:,.0f}"),
                fmt(server.median("rate_128"), "{:,.0f}"),
                fmt(self.ratio(server, "rate_128", c_shared), "{:.2f}"),
                fmt(self.ratio(server, "rate_128", name), "{:.2f}"),
                fmt(server.median("cpu_128"), "{:.1f}"),
            )
            lines.append(f"| {server.name} | {' | '.join(figures)} |")
        return lines


def shared_name(name: str, processes: int) -> str:
    return f"{name}, {processes} processes"


def latency(server: Server) -> str:
    return f"{fmt(server.median('p50_16'), '{:.0f}')} / {fmt(server.median('p99_16'), '{:.0f}')}"


def fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def change(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.0f}%"


def ratio_of(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def kib_to_mib(value: float | None) -> float | None:
    return None if value is None else value / 1024


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short correctness run (CI)")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run greeterd from another checkout (a change's before, side by side)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="also run N greeterd and N C reference processes sharing one socket",
    )
    args = parser.parse_args()
    for tool in ("gcc", "systemd-socket-activate", "ss"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is missing (tests/run installs it)", file=sys.stderr)
            return 1
    settings = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="gbench-", dir="/tmp") as directory:
        work = Path(directory)
        try:
            # The load generator inherits the limit and holds the idle clients, and a user's
            # share of silent ones for the refusals past it.
            problem = raise_open_files(max(settings.idle_clients, MAX_CLIENTS_PER_UID))
            if problem:
                raise Failed(problem)
            binaries = build(work)
            venv = virtualenv(work / "venv", ROOT)
            baseline = args.baseline and virtualenv(work / "baseline", args.baseline.resolve())
            bench = Bench(
                binaries,
                venv,
                work,
                settings,
                baseline=baseline or None,
                processes=args.processes,
            )
            bench.run()
        except Failed as failure:
            print(f"bench: {failure}", file=sys.stderr)
            return 1
        print(bench.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
