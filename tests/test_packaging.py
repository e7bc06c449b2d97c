"""The Python package builds on every setuptools greeterd meets, and says what it needs."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import greeterd
from tests.support import BUILD_PROJECT, ROOT

#: What a build needs from the checkout (the Containerfile copies the same).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "greeterd", "packaging/bin")
#: Debian's own interpreter, with Debian's setuptools (python3-setuptools).
DEBIAN_PYTHON = "/usr/bin/python3"


def build(python: str, directory: Path) -> tuple[str, Path]:
    """Build a copy of the project with ``python``; return the build's output and the wheel."""
    for name in BUILD_INPUTS:
        source, target = ROOT / name, directory / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [python, "-c", BUILD_PROJECT],
        cwd=directory,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output, next((directory / "dist").glob("*.whl"))


@pytest.mark.parametrize(
    "python", [sys.executable, DEBIAN_PYTHON], ids=["newest setuptools", "Debian's setuptools"]
)
def test_the_build_warns_of_no_deprecation_and_ships_the_license(python, tmp_path):
    """A wheel and an sdist build with no deprecation warning (setuptools 77 deprecated the
    license table, to be refused from 2027), and the wheel carries LICENSE, the launcher and
    the right floor for systemd-python."""
    if python == DEBIAN_PYTHON and not Path(DEBIAN_PYTHON).exists():
        pytest.skip("no Debian python3 here")
    output, wheel = build(python, tmp_path)
    print(output.splitlines()[0])
    assert "deprecat" not in output.lower(), output
    with zipfile.ZipFile(wheel) as contents:
        names = contents.namelist()
        info = f"greeterd-{greeterd.__version__}.dist-info"
        metadata = contents.read(f"{info}/METADATA").decode()
    assert any(name.startswith(info) and name.endswith("/LICENSE") for name in names), names
    assert f"greeterd-{greeterd.__version__}.data/scripts/greeterd" in names
    # Metadata 2.1 writes "systemd-python (>=235)", later versions "systemd-python>=235".
    assert re.search(r"^Requires-Dist: systemd-python ?\(?>=235\)?$", metadata, re.M), metadata
