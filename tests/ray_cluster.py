"""A real local Ray cluster for the tests: ``ray start --head --block`` as a subprocess of its own session, on free
ports and its own temporary folder, so that it can be stopped (and started again, for the outage test) without
touching any other Ray on the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import free_port

RAY = Path(sys.executable).with_name("ray")


class RayCluster:
    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.port = free_port()
        self.client_port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths are limited
        self.process: subprocess.Popen | None = None
        self.log = self.folder / "head.log"

    @property
    def address(self) -> str:
        """What AL_RAY_ADDRESS is set to: the cluster's Ray Client server."""
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self, timeout: float = 90.0) -> None:
        ports = {
            "--port": self.port,
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
            "--ray-client-server-port": self.client_port,
            "--min-worker-port": 0,
            "--max-worker-port": 0,
        }
        command = [str(RAY), "start", "--head", "--block", f"--num-cpus={self.cpus}", "--include-dashboard=false"]
        command += [f"--temp-dir={self.folder}", "--disable-usage-stats"]
        command += [f"{flag}={value}" for flag, value in ports.items()]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            done = subprocess.run(
                [str(RAY), "status", f"--address={self.gcs_address}"], capture_output=True, text=True, check=False
            )
            if done.returncode == 0 and "CPU" in done.stdout:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not come up in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def down(self) -> None:
        """The cluster gone at once (as in a crash): every process of its session killed, by process group and by
        the session folder their command lines name (Ray starts workers in groups of their own)."""
        import psutil

        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(30)
            self.process = None
        mine = str(self.folder)
        for process in psutil.process_iter(["pid", "cmdline"]):
            if any(mine in part for part in process.info["cmdline"] or []):
                try:
                    process.kill()
                except psutil.Error:
                    pass
