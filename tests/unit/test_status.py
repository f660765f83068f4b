"""The status app: routes, readiness, the page, the plot, and bearer-token auth."""

import base64
import re

import pytest
from fastapi.testclient import TestClient

from daemon.errors import ArgillaUnavailable
from daemon.plot import render_curve
from daemon.status import authorized, create_app

TOKEN = "correct-horse-battery-staple"
PNG = b"\x89PNG\r\n\x1a\n"


class Source:
    def __init__(self, daemon):
        self.daemon = daemon

    def status(self):
        return self.daemon.status()

    def ready(self):
        return self.daemon.ready()

    def plot(self):
        return render_curve(self.status())


@pytest.fixture
def client(finished_run):
    return TestClient(create_app(Source(finished_run[1])))


def test_routes_serve_status_page_plot_and_metrics(client, finished_run):
    assert client.get("/healthz").json() == {"ok": True}
    status = client.get("/status").json()
    assert status["round"] == 4 and status["state"] == "stopped"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert status["dataset"] in page.text and "kappa_average" in page.text and 'src="plot.png' in page.text
    assert f"{status['accuracy']['last']:.3f}" in page.text
    plot = client.get("/plot.png")
    assert plot.headers["content-type"] == "image/png" and plot.content.startswith(PNG)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "al_rounds_total 4.0" in metrics.text


def test_readyz_reports_degraded_and_unreachable(finished_run, monkeypatch):
    world, daemon, _ = finished_run
    client = TestClient(create_app(Source(daemon)))
    assert client.get("/readyz").status_code == 200
    daemon.last_contact = None  # long ago: readyz pings Argilla itself

    def down():
        raise ArgillaUnavailable("Argilla unreachable: test")

    monkeypatch.setattr(world["gateway"], "ping", down)
    answer = client.get("/readyz")
    assert answer.status_code == 503 and "unreachable" in answer.json()["reason"]
    daemon.state = None
    assert client.get("/readyz").json() == {"ready": False, "reason": "state not loaded yet"}


def test_token_refuses_missing_or_wrong_and_accepts_right(finished_run):
    client = TestClient(create_app(Source(finished_run[1]), token=TOKEN))
    assert client.get("/healthz").status_code == 200  # liveness probes carry no secret
    for path in ("/", "/status", "/readyz", "/metrics", "/plot.png"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert "Bearer" in refused.headers["www-authenticate"]
        assert client.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200


@pytest.mark.parametrize(
    "header, ok",
    [
        (None, False),
        ("", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer {TOKEN}x", False),
        (f"Token {TOKEN}", False),
        ("Basic !!!", False),
        ("Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode(), True),
        ("Basic " + base64.b64encode(TOKEN.encode()).decode(), False),
    ],
)
def test_authorized(header, ok):
    assert authorized(header, TOKEN) is ok


def test_page_and_terminal_show_a_stuck_batch_and_label_changes(world):
    from daemon.cli import format_status
    from tests.unit.conftest import label_batch, make_daemon
    from tests.unit.test_loop import _age, _answers

    daemon = make_daemon(world, stop_criteria=[], stuck_after=60, stuck_action="wait")
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    first = _answers(world, 0)
    world["gateway"].discard(first[sorted(first)[0]])  # withdrawn after round 0 trained on it
    label_batch(world, 1)
    daemon.tick()  # round 1 sees the withdrawal
    for record in world["gateway"].batch(2)[:4]:
        world["gateway"].submit(record.record_id, world["gold"][record.text])
    _age(daemon, daemon.state.current, 3600)
    daemon.tick()
    page = TestClient(create_app(Source(daemon))).get("/").text
    assert "Warning:</b> batch 2 is stuck: 2 of 6 records unanswered after 60 min" in page
    assert "Label changes made in Argilla after training: withdrawn 1" in page
    terminal = format_status(daemon.status())
    assert "warning:   batch 2 is stuck" in terminal and "changes:   withdrawn 1" in terminal


class Stub:
    """A source serving a fixed status document (the page's rendering is what is under test)."""

    def __init__(self, status: dict):
        self.document = status

    def status(self):
        return self.document

    def ready(self):
        return True, "ok"

    def plot(self):
        return PNG


def page_of(status: dict) -> str:
    return TestClient(create_app(Stub(status))).get("/").text


def css_rules(page: str) -> dict[str, dict[str, str]]:
    """The page's top-level CSS rules (``@media`` blocks left out): selector -> {property: value}."""
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    css = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = dict(d.split(":", 1) for d in (d.strip() for d in body.split(";")) if d)
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update({k.strip(): v.strip() for k, v in declarations.items()})
    return rules


def test_page_of_a_stopped_run_shows_no_projected_stop(client, finished_run):
    status = client.get("/status").json()
    assert status["state"] == "stopped" and status["stop"]["projected_round"] is None  # no projection once stopped
    assert finished_run[1].state.rounds[-1].projected_stop_round is not None  # though the last round made one
    page = client.get("/").text
    assert "projected stop" not in page
    assert "stopped<b>after round 3</b>" in page and f"Stopped:</b> {status['stop']['reason']}" in page


@pytest.mark.parametrize(
    "state, stop_reason, shows",
    [
        ("waiting-for-annotators", None, "projected stop<b>15</b>"),
        ("training", None, "projected stop<b>15</b>"),
        ("stopped", None, "stopped<b>after round 3</b>"),  # stopped, reason not journaled (yet)
        # degraded after the stop was journaled (e.g. the export failed): the reason shows in the card
        ("degraded", "kappa_average fired", 'stopped<b>after round 3</b><span class="muted">kappa_average fired'),
    ],
)
def test_projected_stop_card_only_while_the_run_goes_on(finished_run, state, stop_reason, shows):
    status = finished_run[1].status()
    status["stop"] |= {"projected_round": 15, "reason": stop_reason}
    status |= {"state": state, "reason": "export failed: disk full" if state == "degraded" else None}
    page = page_of(status)
    assert shows in page
    assert ("projected stop" in page) is (not shows.startswith("stopped"))


def test_page_fits_a_narrow_window(finished_run):
    status = finished_run[1].status()
    status["annotation"]["annotators_per_record"] = 2  # a second table: annotators
    page = page_of(status)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    rules = css_rules(page)
    assert rules["img"]["max-width"] == "100%" and rules["img"]["height"] == "auto"  # not squashed when narrow
    assert 'width="800" height="450"' in page  # the ratio the browser keeps
    # each table scrolls inside its own box instead of making the page scroll sideways
    assert page.count("<table") == 2 == page.count('<div class="scroll"><table') == page.count("</table></div>")
    assert rules[".scroll"]["overflow-x"] == "auto"
    assert rules["body"]["overflow-wrap"] == "anywhere"  # long dataset names, ids and paths break
