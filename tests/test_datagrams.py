"""Datagram sockets (datagrams.py), served by a Server in a thread on real sockets."""

import array
import os
import socket

import pytest

from tests.support import (
    HELLO,
    connect,
    datagram_client,
    datagram_socket,
    listener,
    wait_for,
)


def test_datagrams_are_answered_to_their_sender_with_credentials_logged(serve, sock_dir):
    """A datagram socket: each message gets one reply at the sender's address; refusals are
    logged with the sender's pid and uid from SCM_CREDENTIALS."""
    with (
        serve(datagram_socket(sock_dir / "d")) as running,
        datagram_client(sock_dir / "d") as client,
    ):
        client.send(b"Zo\xc3\xab\n")
        assert client.recv(4096) == HELLO
        client.send(b"\x1b[2J")
        assert client.recv(4096) == b"error: control character in name\n"
        wait_for(lambda: "refused" in running.log, what="the refusal's log line")
    assert f"pid {os.getpid()} uid {os.getuid()}" in running.log


def test_datagrams_are_answered_while_stream_clients_are_at_the_cap(serve, sock_dir):
    """A datagram takes no connection and no fd: with max_connections stream clients parked
    (the gate closed, the next stream client waiting in the backlog), datagrams are answered
    at once all the same."""
    stream = listener(sock_dir / "s")
    with (
        serve(stream, datagram_socket(sock_dir / "d"), max_connections=1) as running,
        connect(sock_dir / "s"),
        datagram_client(sock_dir / "d") as client,
    ):
        wait_for(lambda: running.server.waiting == 1, what="the silent client parked")
        with connect(sock_dir / "s") as queued:
            queued.sendall(b"Ada\n")
            queued.settimeout(0.3)
            with pytest.raises(TimeoutError):
                queued.recv(64)  # not accepted: it waits in the backlog
            client.settimeout(1)  # well inside the silent client's 5 s
            client.send(b"Dee")
            assert client.recv(4096) == b"Hello, Dee\n"


@pytest.mark.parametrize("pass_credentials", [True, False], ids=["SO_PASSCRED", "no SO_PASSCRED"])
def test_fds_passed_with_datagrams_are_closed_not_kept(serve, sock_dir, pass_credentials):
    """A client that sends fds (SCM_RIGHTS) with each datagram is answered, and none of them
    stays open in the server, whether or not the socket asks for credentials (without
    SO_PASSCRED the kernel installs every passed fd that fits the ancillary buffer)."""
    passed = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", passed).tobytes())]
    endpoint = datagram_socket(sock_dir / "d", pass_credentials=pass_credentials)
    try:
        with serve(endpoint), datagram_client(sock_dir / "d") as client:
            baseline = len(os.listdir("/proc/self/fd"))
            for _ in range(50):
                client.sendmsg([b"Ada"], rights)
                assert client.recv(4096) == b"Hello, Ada\n"
            assert len(os.listdir("/proc/self/fd")) == baseline, "passed fds were kept"
    finally:
        for fd in passed:
            os.close(fd)
