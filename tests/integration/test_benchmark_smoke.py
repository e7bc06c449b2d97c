"""The benchmark still runs: a short pass that checks every reply, never speed."""

import subprocess
import sys

from tests.support import ROOT


def test_the_benchmark_runs_and_every_reply_is_right():
    """bench.py --quick builds the C programs and a virtualenv, runs each server under
    systemd-socket-activate and exits 0 only if every one of loadgen's replies was exact."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    main_table = done.stdout.split("\n\n")[1]
    rows = [line for line in main_table.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == [
        "C reference (epoll)",
        "greeterd",
        "Python floor",
        "greeterd, Accept=yes",
        "greeterd, -IS (as the .deb)",
        "greeterd, Accept=yes, -IS",
        "greeterd, Varlink, 1000 calls per connection",
        "greeterd, Varlink, 1 call per connection",
        "asyncio streams",
        "socketserver threads",
    ]
    assert "| against the Python floor" in done.stdout
    assert "| a flood of refused names" in done.stdout
