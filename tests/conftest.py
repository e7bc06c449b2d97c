"""Fixtures shared by the unit and integration tests."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import Activated, remove_tree, short_temp_dir


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short temporary directory for socket paths (sun_path holds 108 bytes)."""
    directory = short_temp_dir()
    yield directory
    remove_tree(directory)


@pytest.fixture
def activate(sock_dir: Path) -> Iterator[Callable[..., Activated]]:
    """Start greeterd under systemd-socket-activate with the given arguments; stopped after."""
    started: list[Activated] = []

    def start(
        *args: str, wrapper: tuple[str, ...] = (), flags: tuple[str, ...] = (), wait: bool = True
    ) -> Activated:
        daemon = Activated(sock_dir, *args, wrapper=wrapper, flags=flags, wait=wait)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()
