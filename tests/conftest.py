"""Fixtures shared by the unit and integration tests."""

import resource
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from greeterd.activation import Endpoint
from tests.support import (
    Activated,
    Running,
    SelfBound,
    listener,
    raise_open_files,
    remove_tree,
    short_temp_dir,
)


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
        *args: str,
        wrapper: tuple[str, ...] = (),
        launcher: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        wait: bool = True,
    ) -> Activated:
        daemon = Activated(
            sock_dir, *args, wrapper=wrapper, launcher=launcher, flags=flags, wait=wait
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()


@pytest.fixture
def self_bound(sock_dir: Path) -> Iterator[Callable[..., SelfBound]]:
    """Start greeterd without systemd (it binds --socket, by default in sock_dir); killed
    after the test if still running."""
    started: list[SelfBound] = []

    def start(*args: str, path: Path | None = None, env: dict[str, str] | None = None) -> SelfBound:
        daemon = SelfBound(path or sock_dir / "greeter.sock", *args, env=env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
        daemon.process.communicate()


@pytest.fixture
def open_files() -> Iterator[Callable[[int], None]]:
    """raise_open_files() for one test: the limits are put back after it, so a later test
    that needs many fds and does not ask cannot pass on an earlier one's limit."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield raise_open_files
    resource.setrlimit(resource.RLIMIT_NOFILE, saved)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Callable[..., AbstractContextManager[Running]]]:
    """serve(*endpoints, **settings): a Running server, stopped after the test; with no
    endpoints, one stream listener in the test's directory."""
    started: list[Running] = []

    @contextmanager
    def start(*endpoints: Endpoint, **settings: object) -> Iterator[Running]:
        chosen = list(endpoints) or [listener(sock_dir / f"s{len(started)}.sock")]
        running = Running(chosen, **settings)  # type: ignore[arg-type]
        started.append(running)
        yield running

    yield start
    for running in started:
        running.close()
