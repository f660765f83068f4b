"""sd_notify over a real Unix datagram socket, as systemd would receive it."""

import os
import socket
import uuid

import pytest

from daemon.notify import Notifier, watchdog_interval


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def receive(sock) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_watchdog_stopping(listener):
    path, sock = listener
    notifier = Notifier(path)
    notifier.ready("waiting-for-annotators: round 0")
    assert receive(sock) == {"READY": "1", "STATUS": "waiting-for-annotators: round 0", "MAINPID": str(os.getpid())}
    notifier.status("waiting-for-annotators: round 0")  # unchanged: not sent again
    notifier.status("training: round 1")
    assert receive(sock) == {"STATUS": "training: round 1"}
    notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}
    notifier.stopping()
    assert receive(sock) == {"STOPPING": "1", "STATUS": "stopping"}


def test_abstract_namespace_socket():
    name = f"al-daemon-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier("@" + name).send(watchdog=1)
        assert receive(sock) == {"WATCHDOG": "1"}
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled and Notifier().send(ready=1) is False
    assert Notifier(str(tmp_path / "gone.sock")).send(ready=1) is False  # a vanished socket is not an error


@pytest.mark.parametrize(
    "usec, pid, expected",
    [("2000000", None, 1.0), ("30000000", "self", 15.0), ("2000000", "1", None), (None, None, None), ("x", None, None)],
)
def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch, usec, pid, expected):
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert watchdog_interval() == expected
