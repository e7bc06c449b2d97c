"""Each image is the Debian it claims to be, and greeterd builds there without a warning."""

import re

from tests.support import BUILD_PROJECT, POISON, WHERE_THE_LAUNCHER_LOOKS

#: systemd and Python of each suite the container tests boot (Debian's own packages).
PLATFORMS = {"bookworm": ("252", "3.11"), "trixie": ("257", "3.13"), "forky": ("262", "3.14")}
#: What a Debian host's PID 1 sets net.unix.max_dgram_qlen to at boot (the kernel's is 10).
HOST_MAX_DGRAM_QLEN = "512"


def test_the_image_runs_its_suites_systemd_and_python(container, suite):
    """/etc/os-release names the suite, and PID 1 and python3 are that release's versions."""
    release = container.exec("cat", "/etc/os-release").stdout
    assert f"VERSION_CODENAME={suite}" in release
    systemd = container.exec("systemctl", "--version").stdout.split()[1]
    python = container.exec("python3", "-c", "import sys; print(sys.version.split()[0])").stdout
    print(f"{suite}: systemd {systemd}, Python {python.strip()}")
    assert (systemd, python.rsplit(".", 1)[0]) == PLATFORMS[suite]


def test_systemd_runs_on_a_pure_cgroup_v2_hierarchy_with_a_hosts_settings(container, suite):
    """/sys/fs/cgroup is cgroup2 alone (no v1 hierarchy, no tmpfs of them), PID 1 sits in the
    unified hierarchy's /init.scope of the container's own cgroup namespace, systemd reports
    no cgroup v1 taint, and net.unix.max_dgram_qlen is 512, as a host's PID 1 sets it. The
    controllers the unified hierarchy offers are printed: none where the host's v1
    hierarchies hold them all, so memory and pids limits are not enforced there."""
    assert container.exec("stat", "-f", "-c", "%T", "/sys/fs/cgroup").stdout == "cgroup2fs\n"
    mounts = container.exec("findmnt", "-n", "-R", "-o", "FSTYPE", "/sys/fs/cgroup").stdout
    assert mounts.split() == ["cgroup2"], mounts
    own = container.exec("cat", "/proc/1/cgroup").stdout.splitlines()
    assert "0::/init.scope" in own, own
    taint = container.exec("systemctl", "show", "-p", "Tainted", "--value").stdout.strip()
    assert "cgroupsv1" not in taint, taint
    qlen = container.exec("cat", "/proc/sys/net/unix/max_dgram_qlen").stdout.strip()
    assert qlen == HOST_MAX_DGRAM_QLEN
    controllers = container.exec("cat", "/sys/fs/cgroup/cgroup.controllers").stdout.split()
    print(
        f"{suite}: cgroup2 at /sys/fs/cgroup, PID 1 in 0::/init.scope, taint {taint!r}, "
        f"max_dgram_qlen {qlen}, controllers: {' '.join(controllers) or 'none'}"
    )


def test_the_debian_setuptools_builds_greeterd_without_a_deprecation_warning(container, suite):
    """The copy of the checkout in the image builds a wheel and an sdist with the suite's own
    setuptools (66 on bookworm, 78 on trixie, 84 on forky) and no deprecation warning."""
    done = container.exec(
        "sh",
        "-c",
        "cp -r /src/greeterd /tmp/build && cd /tmp/build && python3 -",
        input=BUILD_PROJECT,
    )
    output = done.stdout + done.stderr
    version = re.search(r"setuptools (\S+)", output)
    assert version, output
    print(f"{suite}: setuptools {version.group(1)}")
    assert "deprecat" not in output.lower(), output


def test_the_pip_installed_launcher_also_runs_without_site(container):
    """pip writes a bare interpreter into the launcher's first line (it drops `-IS`), so the
    image's greeterd starts with site; run with -IS it finds greeterd in /usr/local and
    python3-systemd in /usr/lib without site: a .pth file that stops any start running site
    is ignored."""
    assert container.exec("head", "-n", "1", "/usr/local/bin/greeterd").stdout == (
        "#!/usr/bin/python3\n"
    )
    site_dir = container.exec(
        "python3", "-c", "import site; print(site.getsitepackages()[0])"
    ).stdout.strip()
    assert site_dir.startswith("/usr/local/")
    container.exec("sh", "-c", f"cat > {site_dir}/zz-greeterd-test.pth", input=POISON)
    assert "site ran" in container.exec("python3", "-c", "pass", check=False).stderr
    done = container.exec("python3", "-IS", "/usr/local/bin/greeterd", "--version")
    assert done.stdout.startswith("greeterd ")
    found = container.exec(
        "python3", "-IS", "-c", WHERE_THE_LAUNCHER_LOOKS, "/usr/local/bin/greeterd"
    ).stdout.split()
    assert found[0].startswith("/usr/local/lib/python3"), found  # pip's greeterd
    assert found[1].startswith("/usr/lib/python3/dist-packages/systemd/"), found  # apt's
