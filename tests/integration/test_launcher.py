"""greeterd's launcher in a virtualenv: what pip makes of it, and that it runs without site."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import POISON, ROOT, WHERE_THE_LAUNCHER_LOOKS


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with greeterd installed from this checkout, not editable."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return venv


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=60, check=False
    )


def test_pip_drops_the_launchers_flags_and_it_starts_with_site(venv):
    """pip rewrites `#!python -IS` to a bare interpreter path, so a pip install starts with
    site; the launcher works that way too."""
    first_line = (venv / "bin" / "greeterd").read_text().splitlines()[0]
    assert re.fullmatch(rf"#!{re.escape(str(venv))}/bin/python[0-9.]*", first_line), first_line
    done = run(venv / "bin" / "greeterd", "--version")
    assert (done.returncode, done.stdout) == (0, "greeterd 0.1.0\n"), done.stderr


def test_with_python_dash_IS_the_launcher_finds_the_virtualenvs_packages_without_site(venv):
    """Run as `python -IS`, the launcher puts the virtualenv's site-packages on sys.path
    itself: a .pth file that stops any start running site is ignored, and greeterd and
    systemd-python are found there."""
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    poison = site_packages / "zz-greeterd-test.pth"
    poison.write_text(POISON)
    try:
        assert "site ran" in run(venv / "bin" / "python", "-c", "pass").stderr
        done = run(venv / "bin" / "python", "-IS", venv / "bin" / "greeterd", "--version")
        assert (done.returncode, done.stdout) == (0, "greeterd 0.1.0\n"), done.stderr
        where = run(
            venv / "bin" / "python",
            "-IS",
            "-c",
            WHERE_THE_LAUNCHER_LOOKS,
            venv / "bin" / "greeterd",
        )
        found = [Path(path).resolve() for path in where.stdout.split()]
        assert [path.parents[1] for path in found] == [site_packages.resolve()] * 2, where.stderr
    finally:
        poison.unlink()
