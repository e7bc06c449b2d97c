#!/usr/bin/env python3
"""Where a cold start's time goes: the bar, two cold activations, and what greeterd imports.

    python3 tests/benchmarks/startup.py            25 rounds (about 2 min with the setup)
    python3 tests/benchmarks/startup.py --quick    a short run that only checks it works
    python3 tests/benchmarks/startup.py --baseline DIR [--rounds N]
                                                   with DIR's greeterd beside: a change's
                                                   before and after, paired round by round

The start-up goal is that a cold activation's first reply arrive no later than
`python3 -I -c pass` of the same interpreter finishes (the bar). Each round times, in turn:

- the bar, and `python -IS -c pass` (a start without site), from fork to exit;
- a cold activation of the Python floor and of greeterd, both started `-IS` as the Debian
  package starts greeterd: from the client's connect() to the reply, which is when
  systemd-socket-activate execs the server;
- in a fresh `python -IS`, each part greeterd imports before its first reply, timed with
  time.perf_counter() on top of the parts before it, in the order greeterd loads them.

Figures are medians over rounds. The setup is bench.py's: loadgen.c compiled, and a fresh
virtualenv made from the interpreter running this script with greeterd installed from this
checkout (not editable). Needs what bench.py needs (tests/run installs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# A script beside this one, not a package: mypy checks the file, but cannot follow this entry.
from bench import BASELINE, ROOT, Failed, Running, Server, build, machine, run, virtualenv  # type: ignore[import-not-found]  # noqa: E402

FULL_ROUNDS = 25
QUICK_ROUNDS = 2

#: What greeterd imports before its first reply, in the order it loads them; each part is
#: timed with the parts before it already loaded. The floor imports the first part too, and
#: os, which greeterd does not (the last part, timed for comparison).
PARTS = [
    ("_socket, select (the floor's own)", "import _socket, select"),
    ("greeterd's own modules, all it loads before its first reply", "import greeterd.daemon"),
    ("os (the floor imports it; greeterd does not)", "import os"),
]

#: Run in a fresh `python -IS`: the site-packages directory goes on sys.path as greeterd's
#: launcher puts it there, then each part is timed; prints the times and greeterd's modules.
TIME_PARTS = """
import sys, time
sys.path.append({site_packages!r})
spent = []
for statement in {statements!r}:
    started = time.perf_counter()
    exec(statement)
    spent.append((time.perf_counter() - started) * 1000)
print(spent, sum(name.startswith("greeterd") for name in sys.modules))
"""


class Startup:
    def __init__(self, loadgen: str, venv: Path, work: Path, baseline: Path | None = None) -> None:
        self.loadgen = loadgen
        self.python = str(venv / "bin" / "python")
        self.site_packages = run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).strip()
        self.work = work
        floor = str(HERE / "peers" / "python_floor.py")
        self.servers = [
            Server("Python floor, -IS", [self.python, "-IS", floor]),
            Server(
                "greeterd, -IS (as the .deb)", [self.python, "-IS", str(venv / "bin" / "greeterd")]
            ),
        ]
        if baseline:
            python, greeterd = (str(baseline / "bin" / name) for name in ("python", "greeterd"))
            self.servers.append(Server(f"{BASELINE}, -IS", [python, "-IS", greeterd]))
        self.bar: list[float] = []
        self.bare: list[float] = []
        self.parts: list[list[float]] = []
        self.modules = 0

    def exec_ms(self, *arguments: str) -> float:
        return float(run([self.loadgen, "exec", self.python, *arguments])) / 1000

    def round(self) -> None:
        self.bar.append(self.exec_ms("-I", "-c", "pass"))
        self.bare.append(self.exec_ms("-IS", "-c", "pass"))
        # The servers take turns going first, so that neither always follows the same one.
        turn = len(self.bar) % len(self.servers)
        for server in self.servers[turn:] + self.servers[:turn]:
            running = Running(server, self.work / "startup.sock")
            try:
                server.record(
                    "cold_ms", float(run([self.loadgen, "once", str(running.path)])) / 1000
                )
            finally:
                running.stop()
        code = TIME_PARTS.format(
            site_packages=self.site_packages, statements=[statement for _, statement in PARTS]
        )
        spent, modules = run([self.python, "-IS", "-c", code]).rsplit(" ", 1)
        self.parts.append(json.loads(spent))
        self.modules = int(modules)

    def report(self, rounds: int) -> str:
        bar = statistics.median(self.bar)
        floor, greeterd = (server.median("cold_ms") or 0.0 for server in self.servers[:2])
        parts = [statistics.median(column) for column in zip(*self.parts, strict=True)]
        beyond_floor = parts[1]
        lines = [
            f"Start-up on {machine()}; {rounds} rounds, medians.",
            "",
            "| what | ms | / python -I -c pass |",
            "|---|---|---|",
            f"| python -I -c pass (the bar): fork to exit | {bar:.1f} | 1.00 |",
            *(
                f"| {what} | {ms:.1f} | {ms / bar:.2f} |"
                for what, ms in (
                    ("python -IS -c pass: fork to exit", statistics.median(self.bare)),
                    ("Python floor, -IS: a cold activation's first reply", floor),
                    ("greeterd, -IS (as the .deb): a cold activation's first reply", greeterd),
                )
            ),
            "",
            "| imported before the first reply, in a fresh python -IS | ms |",
            "|---|---|",
            *(f"| {what} | {ms:.2f} |" for (what, _), ms in zip(PARTS, parts, strict=True)),
            "",
            f"Room the bar leaves after the floor's first reply: {bar - floor:.1f} ms. "
            f"What greeterd imports beyond the floor's _socket and select: {beyond_floor:.1f} ms "
            f"(greeterd's first reply came {greeterd - floor:.1f} ms after the floor's; "
            f"it loads {self.modules} modules of its own).",
        ]
        if len(self.servers) > 2:
            lines += ["", self.against_baseline()]
        return "\n".join(lines)

    def against_baseline(self) -> str:
        """This checkout's cold activation against the baseline's, round by round: the two
        ran back to back, so a pair shares the machine's mood and the median of the ratios
        sees a change that a difference of medians would lose in the noise."""
        greeterd, baseline = self.servers[1:]
        ratios = [
            mine / theirs
            for mine, theirs in zip(
                greeterd.results["cold_ms"], baseline.results["cold_ms"], strict=True
            )
        ]
        return (
            f"Cold activation against the baseline's (same round, median of "
            f"{len(ratios)} ratios): {statistics.median(ratios):.3f}; the baseline's first "
            f"reply {baseline.median('cold_ms') or 0.0:.1f} ms."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also start greeterd from another checkout, a change's before, in every round",
    )
    parser.add_argument("--rounds", type=int, help=f"rounds to run (default {FULL_ROUNDS})")
    args = parser.parse_args()
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    with tempfile.TemporaryDirectory(prefix="gstartup-", dir="/tmp") as directory:
        work = Path(directory)
        try:
            binaries = build(work)
            baseline = args.baseline and virtualenv(work / "baseline", args.baseline.resolve())
            venv = virtualenv(work / "venv", ROOT)
            startup = Startup(str(binaries / "loadgen"), venv, work, baseline or None)
            for _ in range(rounds):
                startup.round()
        except Failed as failure:
            print(f"startup: {failure}", file=sys.stderr)
            return 1
        print(startup.report(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
