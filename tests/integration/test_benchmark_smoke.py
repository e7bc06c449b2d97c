"""The benchmarks still run: short passes that check every reply, never speed."""

import subprocess
import sys

from tests.support import ROOT


def run_quick(script: str, timeout: float, *args: str) -> str:
    """Run tests/benchmarks/SCRIPT --quick ARGS; return its output once it has exited 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_benchmark_runs_and_every_reply_is_right():
    """bench.py --quick --processes 2 builds the C programs and a virtualenv, runs each server
    under systemd-socket-activate (the last two as 2 processes sharing its socket) and exits 0
    only if every one of loadgen's replies was exact."""
    output = run_quick("bench.py", 600, "--processes", "2")
    main_table = output.split("\n\n")[1]
    rows = [line for line in main_table.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == [
        "C reference (epoll)",
        "greeterd",
        "Python floor",
        "Python floor, -IS",
        "greeterd, Accept=yes",
        "greeterd, -IS (as the .deb)",
        "greeterd, Accept=yes, -IS",
        "greeterd, Varlink, 1000 calls per connection",
        "greeterd, Varlink, 1 call per connection",
        "asyncio streams",
        "socketserver threads",
        "C reference (epoll), 2 processes",
        "greeterd, 2 processes",
    ]
    assert "| against the Python floor" in output
    assert "| a flood of refused names" in output
    shared = output.split("| 2 processes sharing one socket |")[1].splitlines()[2:4]
    assert [row.split("|")[1].strip() for row in shared] == names[-2:]


def test_the_per_greeting_benchmark_runs_and_every_reply_is_right():
    """per_greeting.py --quick serves queued clients through the floor, the floor with
    greeterd's protocol, and greeterd's Server, and exits 0 only if every reply was exact and
    greeterd counted every greeting."""
    assert "every reply checked" in run_quick("per_greeting.py", 120)


def test_the_startup_benchmark_times_the_bar_both_activations_and_each_part():
    """startup.py --quick --baseline (this checkout as its own baseline) exits 0 only if every
    cold activation answered exactly, and reports a time for the bar, each activation and each
    part greeterd imports before its reply, and the cold start against the baseline's."""
    output = run_quick("startup.py", 600, "--baseline", str(ROOT))
    rows = {
        cells[1].strip(): cells[2].strip()
        for cells in (line.split("|") for line in output.splitlines() if line.startswith("| "))
    }
    timed = [
        "python -I -c pass (the bar): fork to exit",
        "Python floor, -IS: a cold activation's first reply",
        "greeterd, -IS (as the .deb): a cold activation's first reply",
        "greeterd's own modules, all it loads before its first reply",
        "os (the floor imports it; greeterd does not)",
    ]
    assert all(float(rows[what]) > 0 for what in timed), output
    assert "modules of its own" in output
    against = output.split("against the baseline's (same round, median of 2 ratios): ")[1]
    assert float(against.split(";")[0]) > 0, output
