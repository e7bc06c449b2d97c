"""Integration tests run greeterd under systemd-socket-activate: the real activation protocol."""

import os

import pytest

from tests.support import require_tool


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _needs_socket_activate() -> None:
    require_tool("systemd-socket-activate", "apt-get install systemd")
