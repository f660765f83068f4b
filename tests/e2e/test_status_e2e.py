"""A simulated TREC-6 run that stops by KappaAverage by itself, watched through the token-protected status
endpoint the whole way: the status moves round by round, /metrics parses, the plot is a PNG, the stop writes
the export, and the export loads back."""

import io
import json
import signal
import subprocess
import sys
import time

import datasets
import httpx
import joblib
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from daemon.simulate import wait_for
from tests.conftest import ROOT
from tests.e2e.conftest import get_status, simulated_annotator, start_daemon

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


KAPPA = 0.9


def test_run_stops_by_kappa_and_exports(argilla_stack, dataset_name, trec_env, trec_data):
    import argilla as rg

    port, log_path, state_dir = trec_env["port"], trec_env["log"], trec_env["state_dir"]
    base = f"http://127.0.0.1:{port}"
    env = trec_env["env"] | {
        # 0.99 (the default) fires after ~55 rounds on TREC-6, 0.95 after ~17; 0.90 after ~10 keeps the test short
        "AL_KAPPA_THRESHOLD": str(KAPPA),
        "AL_STOP_CRITERIA": "kappa_average",
        "AL_MAX_ROUNDS": "60",  # a safety cap: the test fails if kappa does not stop the run first
        "AL_EXIT_ON_STOP": "false",
        "AL_STATUS_TOKEN": TOKEN,
        "AL_LOG_LEVEL": "DEBUG",  # the secrets check below holds for the chattiest log too
    }
    person = simulated_annotator(argilla_stack, dataset_name, trec_data, discard_rate=0.05, seed=2)
    person.start_thread()
    daemon = start_daemon(env, log_path)
    seen: list[dict] = []
    try:
        assert wait_for(lambda: get_status(port, TOKEN) is not None, timeout=120), log_path.read_text()[-3000:]

        # token: refused without or with a wrong one, accepted with the right one; liveness stays open
        assert httpx.get(f"{base}/status").status_code == 401
        assert httpx.get(f"{base}/status", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{base}/healthz").status_code == 200

        def watch() -> bool:
            status = get_status(port, TOKEN)
            if status and (not seen or status != seen[-1]):
                seen.append(status)
            return bool(status and status["state"] == "stopped")

        checked_mid_run = False
        deadline = time.monotonic() + 600
        while not watch():
            assert daemon.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            if not checked_mid_run and seen and seen[-1]["round"] >= 3:
                assert httpx.get(f"{base}/readyz", headers=BEARER).json()["ready"] is True
                metrics = httpx.get(f"{base}/metrics", headers=BEARER).text
                families = {f.name: f for f in text_string_to_metric_families(metrics)}
                assert families["al_rounds"].samples[0].value >= 3
                assert (state_dir / "learning-curve.png").read_bytes().startswith(b"\x89PNG")
                checked_mid_run = True
            time.sleep(0.3)
        assert checked_mid_run

        final = seen[-1]
        served = [httpx.get(f"{base}{path}", headers=BEARER).text for path in ("/status", "/metrics", "/readyz")]
        page = httpx.get(f"{base}/", headers=BEARER)
        plot = httpx.get(f"{base}/plot.png", headers=BEARER)
        terminal = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "status", "--url", base, "--token", TOKEN],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        person.stop()
        if daemon.poll() is None:
            daemon.kill()

    # the status moved the way a run moves
    rounds = [s["round"] for s in seen]
    assert rounds == sorted(rounds) and rounds[-1] >= 5
    labels = [s["labels"] for s in seen]
    assert labels == sorted(labels)
    kappa = final["signals"]["kappa_average"]
    assert kappa["fired"] and kappa["stops"] and len(kappa["history"]) == final["round"] - 1
    assert np.mean([k for _, k in kappa["history"][-3:]]) >= KAPPA  # the window that fired
    assert any(s["stop"]["projected_round"] is not None for s in seen[:-1])
    assert {"waiting-for-annotators", "stopped"} <= {s["state"] for s in seen}
    assert final["stop"]["reason"].startswith("kappa_average fired")
    assert final["accuracy"]["last"] > 0.6 and final["accuracy"]["best"] >= final["accuracy"]["last"]
    assert set(final["last_round"]["seconds"]) >= {"read", "train", "evaluate"}
    assert final["argilla_errors"].get("refused", 0) == 0  # the key and the dataset were never refused
    assert all(s["signals"]["overall_uncertainty"]["value"] is not None for s in seen if s["round"] >= 2)

    # the page shows the numbers and the curve
    assert page.status_code == 200 and dataset_name in page.text and "kappa_average" in page.text
    assert Image.open(io.BytesIO(plot.content)).format == "PNG"
    assert terminal.returncode == 0 and "state:     stopped" in terminal.stdout
    assert "kappa_average" in terminal.stdout

    # no batch after the stop; the export loads back and matches the state
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    dataset = client.datasets(dataset_name, workspace="argilla")
    batch_ids = {int(r.metadata["batch_id"]) for r in dataset.records}
    # the stopping round trained on the last batch (round r closes batch r; round 0 may not train when the
    # features come after AL_FEATURES_WAIT on a loaded machine, and then batch 1 is random)
    assert batch_ids == set(range(final["last_round"]["round"] + 1))
    assert "Labelling is finished" in dataset.settings.guidelines

    export = state_dir / "export"
    report = json.loads((export / "report.json").read_text())
    assert report["stop_reason"] == final["stop"]["reason"] and report["rounds"] == final["round"]
    labelled = datasets.load_from_disk(str(export / "labelled"))
    assert len(labelled) == final["labels"] == report["labels"]
    assert set(labelled["annotators"][0]) == {"annotator"}
    assert datasets.Dataset.from_parquet(str(export / "labelled.parquet")).to_list() == labelled.to_list()
    model = joblib.load(export / "model" / "model.joblib")
    predicted = model.predict(trec_data.test.texts)
    accuracy = float(np.mean(predicted == np.array(trec_data.test.gold)))
    assert accuracy == pytest.approx(final["accuracy"]["last"], abs=1e-9)
    assert "Traceback" not in log_path.read_text()

    # secrets: neither the API key nor the status token in the log, anything served, or any file of the run
    secrets = [argilla_stack["owner_key"].encode(), TOKEN.encode()]
    blobs = {"log": log_path.read_bytes(), "page": page.text.encode(), "terminal": terminal.stdout.encode()}
    blobs |= {f"served {n}": text.encode() for n, text in enumerate(served)}
    blobs |= {str(f.relative_to(state_dir)): f.read_bytes() for f in state_dir.rglob("*") if f.is_file()}
    assert "export/report.json" in blobs and b" DEBUG " in blobs["log"]  # we did look at a debug log
    leaks = [name for name, blob in blobs.items() for secret in secrets if secret in blob]
    assert not leaks, leaks
    # the state dir is private: 0700, and the daemon's own files in it 0600
    assert state_dir.stat().st_mode & 0o777 == 0o700
    own = [f for f in state_dir.iterdir() if f.is_file()]
    assert {"state.json", "daemon.lock", "learning-curve.png"} <= {f.name for f in own}
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in own} == {f.name: "0o600" for f in own}
