"""The HTTP status endpoint (FastAPI served by uvicorn in a background thread)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


def create_app(status: Callable[[], dict]) -> FastAPI:
    """``/healthz`` says the process is alive; ``/status`` returns ``status()`` as JSON."""
    app = FastAPI(title="al-daemon status", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/status")
    def status_json() -> JSONResponse:
        return JSONResponse(status())

    return app


class StatusServer:
    """Runs the app on its own thread; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # signals belong to the daemon's main thread
        self._thread = threading.Thread(target=self._server.run, name="status-http", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        waited = 0.0
        while not self._server.started and waited < timeout and self._thread.is_alive():
            threading.Event().wait(0.05)
            waited += 0.05
        if not self._server.started:
            raise RuntimeError(f"status endpoint could not bind {self.host}:{self.port}")
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("status endpoint on http://%s:%d/status", self.host, self.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
