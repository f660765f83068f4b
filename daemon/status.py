"""The HTTP status endpoint (FastAPI served by uvicorn in a background thread).

- ``/healthz``: the process is alive (never needs the token: liveness probes must not carry secrets).
- ``/readyz``: 200 when the state is loaded and Argilla answers, else 503 with the reason.
- ``/status``: the run as JSON (see :func:`daemon.report.status_view`).
- ``/metrics``: Prometheus text format.
- ``/`` a small human page with the learning curve, which is also at ``/plot.png``.
- ``POST /webhook``: Argilla's signed events (AL_WEBHOOK_URL; see :mod:`daemon.webhooks`). A body over
  ``MAX_WEBHOOK_BODY`` gets 413: refused from its Content-Length, or (chunked, or a lying length) once reading it
  passed the cap; more than the cap is never held in memory, and the connection is closed after the answer.

With a token configured, every route but ``/healthz`` and ``/webhook`` (which checks Argilla's signature) needs ``Authorization: Bearer <token>``; browsers
may send it as the password of HTTP Basic auth (any user name), so the page works from a browser too.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
from typing import Protocol

import jinja2
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from daemon.errors import DaemonError
from daemon.metrics import CONTENT_TYPE, render_metrics
from daemon.report import number, signal_digits
from daemon.webhooks import MAX_WEBHOOK_BODY, TooLarge

log = logging.getLogger(__name__)

OPEN_PATHS = {"/healthz", "/webhook"}  # /webhook: Argilla signs its events instead of sending the token


class StatusSource(Protocol):
    def status(self) -> dict: ...

    def ready(self) -> tuple[bool, str]: ...

    def plot(self) -> bytes: ...

    def webhook(self, body: bytes | TooLarge, headers: dict) -> tuple[int, dict]: ...


def authorized(header: str | None, token: str) -> bool:
    """Bearer <token>, or Basic auth whose password is the token."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return secrets.compare_digest(value.encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(decoded.partition(":")[2].encode(), token.encode())
    return False


def create_app(source: StatusSource, token: str | None = None) -> FastAPI:
    app = FastAPI(title="al-daemon status", docs_url=None, redoc_url=None, openapi_url=None)

    if token:

        @app.middleware("http")
        async def require_token(request: Request, call_next):
            if request.url.path in OPEN_PATHS or authorized(request.headers.get("authorization"), token):
                return await call_next(request)
            response = JSONResponse({"detail": "missing or wrong token"}, status_code=401)
            response.headers.append("WWW-Authenticate", 'Bearer realm="al-daemon"')
            response.headers.append("WWW-Authenticate", 'Basic realm="al-daemon", charset="UTF-8"')
            return response

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ok, reason = source.ready()
        return JSONResponse({"ready": ok, "reason": reason}, status_code=200 if ok else 503)

    @app.get("/status")
    def status_json() -> JSONResponse:
        return JSONResponse(source.status())

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render_metrics(source.status()), media_type=CONTENT_TYPE)

    @app.get("/plot.png")
    def plot() -> Response:
        return Response(source.plot(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        try:
            body = await read_capped(request, MAX_WEBHOOK_BODY)
        except ClientDisconnect:  # gone before its body arrived: nobody to answer
            return Response(status_code=400, headers={"Connection": "close"})
        status, answer = source.webhook(body, dict(request.headers))
        # not read to its end: the rest of a body refused must not be read (nor parsed as a next request)
        headers = {"Connection": "close"} if isinstance(body, TooLarge) else None
        return JSONResponse(answer, status_code=status, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.render(s=source.status()))

    return app


async def read_capped(request: Request, cap: int) -> bytes | TooLarge:
    """The request's body, or :class:`TooLarge` as soon as it is known to exceed ``cap`` bytes: from the
    Content-Length header before reading anything, else (chunked, or a length that lies) when the chunks read so far
    plus the next would pass it. Never holds more than ``cap`` bytes plus the one chunk being looked at."""
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:  # none (chunked); the server refuses a malformed one before this
        declared = -1
    if declared > cap:
        return TooLarge(declared=declared)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > cap:
            return TooLarge(read=len(body) + len(chunk))
        body += chunk
    return bytes(body)


_env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
_env.filters["num"] = lambda value, digits=3: number(value, digits, missing="–")
_env.globals["signal_digits"] = signal_digits
PAGE = _env.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>al-daemon · {{ s.dataset }}</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:64rem;overflow-wrap:anywhere}
 @media (max-width:30rem){body{margin:.8rem}}
 h1{font-size:1.3rem;margin:0 0 .3rem} .muted{color:#666;font-size:.9rem}
 .state{display:inline-block;padding:.15rem .6rem;border-radius:1rem;background:#e8eefc;font-weight:600}
 .state.degraded{background:#fde2e1}.state.stopped{background:#e3f5e1}
 .cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
 .card{border:1px solid #ddd;border-radius:.5rem;padding:.6rem .9rem;min-width:9rem}
 .card b{display:block;font-size:1.4rem} table{border-collapse:collapse;font-size:.9rem;overflow-wrap:normal}
 .scroll{overflow-x:auto;max-width:100%}
 td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right} th:first-child,td:first-child{text-align:left}
 .bar{height:.6rem;background:#eee;border-radius:.3rem;overflow:hidden;width:100%}
 .bar span{display:block;height:100%;background:#4a7bd8}
 img{max-width:100%;height:auto;border:1px solid #eee;margin-top:1rem;box-sizing:border-box}
</style></head><body>
<h1>{{ s.dataset }} <span class="state {{ s.state }}">{{ s.state }}</span></h1>
<div class="muted">{{ s.model }} · {{ s.query_strategy }} · batch size {{ s.batch_size }} · workspace {{ s.workspace }}
 · al-daemon {{ s.version }}</div>
{% if s.reason %}<p><b>{{ 'Stopped' if s.state == 'stopped' else 'Reason' }}:</b> {{ s.reason }}</p>{% endif %}
{% if s.last_error %}<p><b>Last error:</b> {{ s.last_error }}</p>{% endif %}
{% for w in s.warnings %}<p><b>Warning:</b> {{ w }}</p>{% endfor %}
{% if s.ladder %}{% set lad = s.ladder %}<p><b>Model ladder:</b> {{ lad.model_in_use }} chooses the batches{% if not lad.taken_over %}; {{ lad.candidate }} may take over (first compared at {{ lad.first_comparison_at }} labels){% endif %}{% if lad.running %}; comparing now on {{ lad.running.labels }} labels{% endif %}{% if lad.probing %}; comparing {{ lad.probing.candidate }} with {{ lad.probing.current }} on {{ lad.probing.probes }} texts where they disagree ({{ lad.probing.waiting }} still to label){% endif %}{% for v in lad.comparisons %}<br><span class="muted">round {{ v.round }}: {{ v.reason }}</span>{% endfor %}</p>{% endif %}
{% if s.changes.total %}<p>Label changes made in Argilla after training: {% for k, n in s.changes.by_kind.items() %}{{ k }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
<div class="cards">
 <div class="card">rounds trained<b>{{ s.round }}</b></div>
 <div class="card">labels<b>{{ s.labels }}</b><span class="muted">{{ s.discarded }} discarded ·
  {{ s.unlabelled|num }} of {{ s.pool_size }} unlabelled</span></div>
 <div class="card">batch {{ s.batch.batch_id|num }}<b>{{ s.batch.done|default(0) }}/{{ s.batch.total|num }}</b>
  <div class="bar"><span style="width:{{ (100 * (s.batch.done or 0) / (s.batch.total or 1))|round(1) }}%"></span></div>
  <span class="muted">{{ s.batch.completed|default(0) }} submitted · {{ s.batch.discarded|default(0) }} discarded ·
   {{ s.batch.pending|default(0) }} pending</span></div>
 {% set f = s.features %}{% if f and f.state != 'ready' %}
 <div class="card">model features<b>{{ (100 * (f.done or 0) / (f.total or 1))|round|int }}%</b>
  <div class="bar"><span style="width:{{ (100 * (f.done or 0) / (f.total or 1))|round(1) }}%"></span></div>
  <span class="muted">embedding the {{ f.stage or 'pool' }}: {{ f.done|num }}/{{ f.total|num }} texts
  {%- if f.rate %} · {{ f.rate|num(0) }}/s · {{ f.eta_seconds|num(0) }} s left{% endif %}
  {%- if f.state == 'failed' %} · failed, retrying: {{ f.error }}{% endif %}; batches are drawn at random until
  then</span></div>
 {% endif %}
 <div class="card">{{ 'subset accuracy' if s.task == 'multi-label' else 'accuracy' }}<b>{{ s.accuracy.last|num }}</b><span class="muted">best {{ s.accuracy.best|num }}
  (round {{ s.accuracy.best_round|num }})</span></div>
 <div class="card">macro-F1<b>{{ s.macro_f1.last|num }}</b><span class="muted">best {{ s.macro_f1.best|num }}</span></div>
 {% if s.task == 'multi-label' %}<div class="card">micro-F1<b>{{ s.micro_f1.last|num }}</b><span class="muted">best
  {{ s.micro_f1.best|num }} · Hamming loss {{ s.hamming_loss.last|num }}</span></div>{% endif %}
 {% if s.state == 'stopped' or s.stop.reason %}{% set why = s.stop.reason or s.reason %}
 <div class="card">stopped<b>after round {{ s.last_round.round|num }}</b>
  {%- if why and why != s.reason %}<span class="muted">{{ why }}</span>{% endif %}</div>
 {% else %}
 <div class="card">projected stop<b>{{ s.stop.projected_round|num }}</b><span class="muted">round
  {% if s.stop.projected_labels %}(~{{ s.stop.projected_labels }} labels){% endif %}</span></div>
 {% endif %}
</div>
<div class="scroll"><table><tr><th>stopping criterion</th><th>value</th><th>threshold</th><th>fired</th><th>stops the run</th></tr>
{% for name, sig in s.signals.items() %}<tr><td>{{ name }}</td>
<td>{{ sig.value|num(signal_digits(name)) }}</td><td>{{ sig.threshold|num }}</td>
<td>{{ 'yes' if sig.fired else 'no' }}</td><td>{{ 'yes' if sig.stops else '' }}</td></tr>{% endfor %}
</table></div>
<p class="muted">Stop rule: {{ s.stop.mode }} of [{{ s.stop.criteria|join(', ') }}]
{%- if s.stop.max_rounds %}, at most {{ s.stop.max_rounds }} rounds{% endif %}
{%- if s.stop.max_labels %}, at most {{ s.stop.max_labels }} labels{% endif %}.
{% if s.last_round %}Last round {{ s.last_round.round }}:
{% for phase, sec in s.last_round.seconds.items() %}{{ phase }} {{ sec|num(2) }} s{{ ', ' if not loop.last }}{% endfor %}.{% endif %}
{% if s.export %}Export: {{ s.export.path }}.{% endif %}</p>
{% set a = s.annotation %}{% if a and (a.texts_with_several_votes or a.activelab or a.annotators_per_record > 1) %}
<div class="scroll"><table><tr><th>annotator</th><th>labels</th><th>agreement with the consensus</th><th>quality (CROWDLAB)</th></tr>
{% for who, v in a.annotators.items() %}<tr><td>{{ v.name or who }}</td><td>{{ v.labels }}</td>
<td>{{ v.agreement|num }}{% if v.compared %} <span class="muted">({{ v.compared }} shared)</span>{% endif %}</td>
<td>{{ v.quality|num }}</td></tr>{% endfor %}
</table></div>
<p class="muted">Consensus: {{ a.consensus_used or a.consensus }} · {{ a.annotations }} answers on
{{ a.texts_with_several_votes }} texts with several votes · mean agreement {{ a.mean_agreement|num }}
{%- if a.activelab %} · ActiveLab relabel requests {{ a.relabel_requests }} (at most {{ a.max_annotations }} labels a text){% endif %}.</p>
{% endif %}
<img src="plot.png?round={{ s.round }}" alt="learning curve" width="800" height="450">
</body></html>
"""
)


class StatusServer:
    """Runs the app on its own thread; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # signals belong to the daemon's main thread
        self._thread = threading.Thread(target=self._serve, name="status-http", daemon=True)
        self.host = host
        self.port = port

    def _serve(self) -> None:
        try:
            self._server.run()
        except SystemExit:  # uvicorn leaves this way when it cannot bind: start() says so, in one line
            pass

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        waited = 0.0
        while not self._server.started and waited < timeout and self._thread.is_alive():
            threading.Event().wait(0.05)
            waited += 0.05
        if not self._server.started:
            raise DaemonError(
                f"the status endpoint could not bind {self.host}:{self.port} (in use by another program? set "
                "AL_STATUS_PORT, or 0 for any free port)"
            )
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("status page on http://%s:%d/ (JSON at /status, Prometheus at /metrics)", self.host, self.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
