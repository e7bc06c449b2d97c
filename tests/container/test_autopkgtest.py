"""The package's own as-installed tests (packaging/debian/tests, DEP-8), run by autopkgtest the
way Debian's CI would run them if greeterd were in the archive: packaging/container/autopkgtest
boots the clean image of each suite with systemd as PID 1 (on cgroup v2, through boot), installs
that suite's autopkgtest there and runs it with the null backend against this checkout's .deb.
"""

from __future__ import annotations

import subprocess
import time

from tests.container.conftest import CONTAINER_DIR

#: Every test packaging/debian/tests/control declares; autopkgtest's summary must name each.
TESTS = ("greet", "user-instance", "varlink")


def test_autopkgtest_passes_the_packages_tests_on_the_installed_deb(
    clean_image, deb, suite, tmp_path
):
    """autopkgtest installs the .deb and runs debian/tests/control's tests: greet (socket
    activation, root and nobody greeted), user-instance (a lingering user's own greeterd) and
    varlink (varlinkctl) pass; on bookworm, whose systemd 252 has no varlinkctl, varlink is
    skipped through its exit status 77, and nothing else is. Any FAIL, or any test missing
    from the summary, fails this test with autopkgtest's log."""
    output = tmp_path / "autopkgtest"
    started = time.monotonic()
    done = subprocess.run(
        [str(CONTAINER_DIR / "autopkgtest"), "--output", str(output), clean_image, str(deb)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    summary = {
        line.split()[0]: line.split(maxsplit=1)[1]
        for line in done.stdout.splitlines()
        if line.strip()
    }
    versions = [line for line in done.stderr.splitlines() if line.startswith("autopkgtest: ")]
    print(f"autopkgtest on {suite} in {took:.0f} s: {summary}; {versions}")
    log = f"exit status {done.returncode}\n{done.stderr[-12000:]}"
    assert set(summary) == set(TESTS), log
    no_varlinkctl = suite == "bookworm"
    for test in TESTS:
        if test == "varlink" and no_varlinkctl:
            assert summary[test].startswith("SKIP exit status 77"), log
            skipped = (output / "varlink-stdout").read_text()
            assert "has no varlinkctl" in skipped, skipped
        else:
            assert summary[test] == "PASS", log
    # autopkgtest's own verdict: 2 when a test was skipped and none failed, else 0.
    assert done.returncode == (2 if no_varlinkctl else 0), log
