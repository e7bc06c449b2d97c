"""Integration tests run greeterd under systemd-socket-activate: the real activation protocol."""

import os
import shutil

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _needs_socket_activate() -> None:
    if shutil.which("systemd-socket-activate") is None:
        message = "systemd-socket-activate is missing (apt-get install systemd)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the integration tests")
        pytest.skip(message)
