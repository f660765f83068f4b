"""The status page in a real browser (headless Chromium through Playwright): on a phone (360x740, the viewport meta
honoured), in a narrow desktop window and in a wide one, the page never scrolls sideways (tables scroll in their
own box, long names and ids wrap) and the learning curve keeps its 800x450 shape instead of being squashed; after
the run stopped there is no "projected stop" card. Screenshots go to tests/output/browser/status-page/.

The page is served by the real StatusServer (uvicorn, a free port) from a fixed status document shaped like the
daemon's ``/status`` (the page's rendering is what is under test, not the run). Needs Debian's Chromium
(``apt-get install chromium``; .ci/run installs it) and the ``playwright`` package (a dev extra); never
``playwright install``. Skipped where no Chromium exists, except under CI (``CI`` set), where that is a failure.
"""

import copy

import pytest

from daemon.plot import render_curve
from daemon.status import StatusServer, create_app
from tests.conftest import OUTPUT

SHOTS = OUTPUT / "browser" / "status-page"
ANNOTATORS = {
    "5b0c1f8e-7d1a-4c55-9a57-3f0e9a8d2c11": ("maria", 212, 0.912, 0.87),
    "0e6f3b2a-91c4-4f0d-8b7e-6c5d4a3b2f10": (None, 198, 0.885, 0.81),  # no name: the id is shown
    "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f": ("annotator-with-a-rather-long-user-name", 187, 0.794, 0.66),
}
SIGNALS = {  # name: (value, threshold, fired, stops)
    "kappa_average": (0.9712, 0.99, False, True),
    "delta_f_score": (0.0213, 0.05, True, False),
    "classification_change": (0.023, 0.01, False, False),
    "overall_uncertainty": (0.342, 0.05, False, False),
    "max_iterations": (30.0, None, False, False),
    "label_budget": (600.0, 1000, False, True),
}


def running_status() -> dict:
    """A /status document of a run in progress: 30 rounds of TREC-6, three annotators, a stuck-batch warning."""
    history = []
    for n in range(30):
        labels = 20 * (n + 1)
        signals = {
            name: {"value": value * (1 + (29 - n) / 30), "fired": False} for name, (value, *_) in SIGNALS.items()
        }
        history.append(
            {
                "round": n,
                "labels": labels,
                "accuracy": min(0.36 + 0.5 * (1 - 0.9**n), 0.95),
                "macro_f1": min(0.22 + 0.5 * (1 - 0.9**n), 0.9),
                "signals": signals,
                "projected_stop_round": 52 if n > 3 else None,
                "seconds": {"read": 0.11, "train": 2.5, "evaluate": 0.1, "query": 0.05, "log": 0.46},
                "finished_at": f"2026-11-23T10:{n:02d}:00+00:00",
            }
        )
    dataset = "trec6-question-classification-pilot-2026-11-23-with-a-long-name"
    return {
        "version": "0.1.0",
        "state": "waiting-for-annotators",
        "reason": "batch 30 logged: 14 of 20 records answered",
        "last_error": None,
        "warnings": [
            "batch 29 is stuck: 2 of 20 records unanswered after 60 min "
            "(3f2c0d4e-0000-4000-8000-000000000001,9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d)"
        ],
        "dataset": dataset,
        "workspace": "annotation-team-workspace",
        "argilla_url": "http://127.0.0.1:6900",
        "model": "hybrid (sentence-transformers/all-MiniLM-L6-v2 + tfidf-logreg)",
        "query_strategy": "breaking_ties",
        "batch_size": 20,
        "pool_size": 5452,
        "unlabelled": 4842,
        "round": 30,
        "labels": 600,
        "discarded": 12,
        "open": 0,
        "changes": {"total": 3, "by_kind": {"withdrawn": 1, "relabelled": 2}, "last": []},
        "annotation": {
            "annotators_per_record": 2,
            "consensus": "crowdlab",
            "consensus_used": "crowdlab",
            "activelab": True,
            "max_annotations": 3,
            "annotations": 1210,
            "relabel_requests": 41,
            "texts_with_several_votes": 597,
            "mean_agreement": 0.864,
            "annotators": {
                who: {"labels": n, "compared": n - 3, "agreement": agree, "quality": quality, "name": name}
                for who, (name, n, agree, quality) in ANNOTATORS.items()
            },
        },
        "batch": {"batch_id": 30, "total": 20, "done": 14, "completed": 13, "discarded": 1, "pending": 6},
        "accuracy": {"last": history[-1]["accuracy"], "best": history[-1]["accuracy"], "best_round": 29},
        "macro_f1": {"last": history[-1]["macro_f1"], "best": history[-1]["macro_f1"], "best_round": 29},
        "signals": {
            name: {
                "value": value,
                "threshold": threshold,
                "fired": fired,
                "stops": stops,
                "history": [[m["round"], m["signals"][name]["value"]] for m in history],
            }
            for name, (value, threshold, fired, stops) in SIGNALS.items()
        },
        "stop": {
            "criteria": ["kappa_average"],
            "mode": "any",
            "max_rounds": None,
            "max_labels": 1000,
            "projected_round": 52,
            "projected_labels": 1040,
            "reason": None,
            "stopped_at": None,
        },
        "last_round": {"round": 29, "seconds": history[-1]["seconds"], "finished_at": history[-1]["finished_at"]},
        "history": history,
        "argilla_errors": {},
        "export": None,
    }


def stopped_status() -> dict:
    status = copy.deepcopy(running_status())
    reason = "kappa_average: 0.9921 >= 0.99 (KappaAverage) after round 29"
    status |= {"state": "stopped", "reason": reason, "warnings": []}
    status["stop"] |= {"reason": reason, "stopped_at": "2026-11-23T10:30:00+00:00"}
    status["export"] = {"path": "/var/lib/al-daemon/state/trec6-question-classification-pilot/export"}
    return status


class Stub:
    """A StatusSource serving a fixed document and its real learning-curve PNG."""

    def __init__(self, status: dict) -> None:
        self.document = status
        self.png = render_curve(status)

    def status(self) -> dict:
        return self.document

    def ready(self) -> tuple[bool, str]:
        return True, "ok"

    def plot(self) -> bytes:
        return self.png


@pytest.fixture(scope="module")
def pages():
    """The page of a running run and of a stopped one, each on its own server: name -> URL."""
    documents = {"running": running_status(), "stopped": stopped_status()}
    servers = {name: StatusServer(create_app(Stub(status)), "127.0.0.1", 0) for name, status in documents.items()}
    for server in servers.values():
        server.start()
    yield {name: f"http://127.0.0.1:{server.port}/" for name, server in servers.items()}
    for server in servers.values():
        server.stop()


MEASURE = """() => {
  const img = document.querySelector('img[alt="learning curve"]');
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    imgLoaded: img.complete && img.naturalWidth > 0,
    natural: [img.naturalWidth, img.naturalHeight],
    img: [img.clientWidth, img.clientHeight],
    text: document.body.innerText,
  };
}"""

WINDOWS = {  # name: (width, height, a phone honouring the viewport meta)
    "phone-360": (360, 740, True),
    "narrow-window-360": (360, 740, False),
    "desktop-1280": (1280, 800, False),
}


@pytest.mark.parametrize("run", ["running", "stopped"])
@pytest.mark.parametrize("window", WINDOWS)
def test_status_page_fits_the_window_and_keeps_the_plot_shape(browser, pages, window, run):
    width, height, mobile = WINDOWS[window]
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=mobile, has_touch=mobile)
    try:
        page = context.new_page()
        answer = page.goto(pages[run], wait_until="load")
        assert answer is not None and answer.status == 200
        page.wait_for_function("() => document.querySelector('img').complete")
        seen = page.evaluate(MEASURE)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{run}-{window}.png", full_page=True)
    finally:
        context.close()

    problems = []  # every one of them, so a failure shows all that is wrong with the page
    if seen["innerWidth"] != width:  # a phone without the viewport meta lays the page out 980 px wide, zoomed out
        problems.append(f"laid out {seen['innerWidth']} px wide in a {width} px viewport")
    if seen["scrollWidth"] > seen["innerWidth"]:
        problems.append(f"the page scrolls sideways: {seen['scrollWidth']} px wide in {seen['innerWidth']}")
    if not seen["imgLoaded"] or seen["natural"] != [800, 450]:
        problems.append(f"the plot did not load as an 800x450 PNG: {seen['natural']}")
    shown_width, shown_height = seen["img"]
    if shown_width > min(800, width) or abs(shown_height / shown_width - 450 / 800) > 0.01:
        problems.append(f"the plot is shown {shown_width}x{shown_height}, not at 800x450's ratio within the window")
    text = seen["text"]
    if "kappa_average" not in text or "maria" not in text:
        problems.append("the signal or annotator table is missing")
    if run == "stopped" and ("projected stop" in text or "stopped\nafter round 29" not in text):
        problems.append("a stopped run shows a projected stop (or no 'stopped after round 29' card)")
    if run == "running" and "projected stop\n52" not in text:
        problems.append("a running run shows no projected stop")
    assert not problems, problems
