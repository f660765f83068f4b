"""Bad input, each refused at start-up with a clear message (exit 2) and nothing lost: the real CLI, the real
Argilla. Every case goes into the RESULTS.md table with the message the user sees."""

import json
import os
import signal
import subprocess
import sys

import pytest

from daemon.gateway import ArgillaGateway, DatasetSpec
from daemon.simulate import wait_for
from daemon.state import RunState, StateStore
from tests.conftest import ROOT, free_port, tiny_rows, write_jsonl
from tests.e2e.conftest import get_status
from tests.faults.conftest import assert_clean, audit

pytestmark = pytest.mark.faults

LABELS = ["food", "sport", "tech"]


def shown(answer: subprocess.CompletedProcess, tmp) -> str:
    """The message the user sees (its last line), with the test's temporary folder shortened for the table."""
    lines = answer.stderr.strip().splitlines()
    return f"exit {answer.returncode}: `{(lines[-1] if lines else '').replace(str(tmp), '<tmp>').strip()[:140]}`"


def nothing_written(stack: dict, dataset: str, state_dir, state_before: bytes | None = None) -> dict:
    """After a refused start: no record in Argilla and the state dir's state.json as it was (the table's counts)."""
    import httpx

    http = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]}, timeout=30)
    found = [d for d in http.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset]
    records = sum(http.get(f"/api/v1/datasets/{d['id']}/records", params={"limit": 1}).json()["total"] for d in found)
    path = state_dir / "state.json"
    after = path.read_bytes() if path.exists() else None
    assert records == 0 and after == state_before, (records, after)
    return {"records": records, "duplicate_records": 0, "labels_lost": 0, "labels_used_twice": 0, "labels": 0}


def run_cli(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def base(argilla_stack, dataset_name, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10))
    env = {
        **os.environ,
        "AL_ARGILLA_URL": argilla_stack["url"],
        "AL_ARGILLA_API_KEY": argilla_stack["owner_key"],
        "AL_DATASET": dataset_name,
        "AL_POOL_FILE": str(pool),
        "AL_TEST_FILE": "",
        "AL_MODEL": "tfidf",
        "AL_BATCH_SIZE": "6",
        "AL_STATE_DIR": str(tmp_path / "state"),
        "AL_STATUS_PORT": str(free_port()),
        "AL_CONNECT_TIMEOUT": "3",
    }
    return {"env": env, "dir": tmp_path, "pool": pool}


def rows_with(tmp_path, name, change):
    rows = tiny_rows(10)
    change(rows)
    return str(write_jsonl(tmp_path / name, rows))


def as_label_sets(rows: list[dict]) -> None:
    """A multi-label file: every row's label as a list (the odd rows with a second label)."""
    for n, row in enumerate(rows):
        row["label"] = [row["label"]] + ([LABELS[(LABELS.index(row["label"]) + 1) % 3]] if n % 2 else [])


def bad_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "a", "text": "fine", "label": "food"}\n{"id": "b", "text": "caf\xe9", "label": "food"}\n')
    return str(path)


def emoji_only(tmp_path):
    rows = [{"id": f"e{i}", "text": "😀🎉" * (i % 3 + 1) + " 🙂" * i, "label": LABELS[i % 3]} for i in range(30)]
    return str(write_jsonl(tmp_path / "emoji.jsonl", rows))


UNWRITABLE = "/sys/fs/al-daemon-test"  # sysfs: nobody may create a folder here, root included

CASES = {  # name -> (setup(base) -> extra env, expected message)
    "empty and whitespace texts": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", lambda r: r[3].update(text="   "))},
        "empty or missing text in row 4",
    ),
    "a 1 MB text": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", lambda r: r[5].update(text="x" * 1_048_576))},
        "text longer than 100,000 characters in row 6",
    ),
    "bad UTF-8": (lambda b: {"AL_POOL_FILE": bad_utf8(b["dir"])}, "not valid UTF-8 in row 2"),
    "duplicate ids": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", lambda r: r[2].update(id=r[1]["id"]))},
        "duplicate id in row 3",
    ),
    "missing text column": (lambda b: {"AL_TEXT_COLUMN": "sentence"}, "no text column 'sentence'"),
    "pool file not found": (lambda b: {"AL_POOL_FILE": str(b["dir"] / "nope.jsonl")}, "file not found"),
    "unknown labels in the test set": (
        lambda b: {
            "AL_TEST_FILE": rows_with(b["dir"], "t.jsonl", lambda r: r[4].update(label="weather")),
            "AL_LABELS": ",".join(LABELS),
        },
        "label not in the label set",
    ),
    "a label set with one class": (lambda b: {"AL_LABELS": "food"}, "at least two labels"),
    "pool smaller than a batch": (lambda b: {"AL_BATCH_SIZE": "500"}, "fewer than one batch"),
    "invalid setting value": (lambda b: {"AL_POLL_INTERVAL": "-1"}, "invalid settings"),
    "wrong API key": (lambda b: {"AL_ARGILLA_API_KEY": "wrong.key"}, "refused the API key"),
    "unreachable Argilla URL": (
        lambda b: {"AL_ARGILLA_URL": f"http://127.0.0.1:{free_port()}"},
        "cannot reach Argilla at http://127.0.0.1:",
    ),
    "wrong workspace": (lambda b: {"AL_WORKSPACE": "nope"}, "workspace 'nope' does not exist"),
    "status port exposed without a token": (lambda b: {"AL_STATUS_HOST": "0.0.0.0"}, "set AL_STATUS_TOKEN"),
    "AL_STATE_DIR is a file": (
        lambda b: {"AL_STATE_DIR": str(b["pool"])},
        "the state folder (AL_STATE_DIR) <tmp>/pool.jsonl: <tmp>/pool.jsonl is a file, not a folder",
    ),
    "AL_STATE_DIR not writable": (
        lambda b: {"AL_STATE_DIR": f"{UNWRITABLE}/state"},
        f"the state folder (AL_STATE_DIR) {UNWRITABLE}/state is not writable: [Errno 1] Operation not permitted",
    ),
    "the cache (embeddings) not writable": (
        lambda b: {"AL_CACHE_DIR": f"{UNWRITABLE}/cache"},
        f"the cache folder (AL_CACHE_DIR) {UNWRITABLE}/cache is not writable",
    ),
    "emoji-only texts with the default model": (
        lambda b: {"AL_POOL_FILE": emoji_only(b["dir"]), "AL_MODEL": "hybrid"},
        "no text has a word of two or more letters or digits",
    ),
    "AL_POLL_INTERVAL=inf": (
        lambda b: {"AL_POLL_INTERVAL": "inf"},
        "poll_interval (AL_POLL_INTERVAL): Input should be a finite number",
    ),
    "AL_POLL_INTERVAL=1e12": (
        lambda b: {"AL_POLL_INTERVAL": "1e12"},
        "poll_interval (AL_POLL_INTERVAL): Input should be less than or equal to 86400",
    ),
    "AL_STOP_TIMEOUT=inf": (
        lambda b: {"AL_STOP_TIMEOUT": "inf"},
        "stop_timeout (AL_STOP_TIMEOUT): Input should be a finite number",
    ),
    "an empty AL_DATASET": (lambda b: {"AL_DATASET": ""}, "dataset (AL_DATASET): Value error, must not be empty"),
    "a label longer than Argilla allows": (
        lambda b: {"AL_LABELS": "food,sport," + "t" * 250, "AL_TEST_FILE": ""},
        "AL_LABELS: label 'tttttttttttttttttttttttttttttttttttttttt...' is 250 characters long (1 such label(s)); Argilla allows at most 200",
    ),
    "a text with a NUL byte": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", lambda r: r[7].update(text="broken\x00text"))},
        "NUL character (\\u0000) in the text of row 8",
    ),
    "a Ray address that is not a Ray Client one": (
        lambda b: {"AL_RAY_ADDRESS": "127.0.0.1:6379"},
        "ray_address must be a Ray Client address, ray://host:10001",
    ),
    "label lists with AL_TASK=single": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", as_label_sets), "AL_TASK": "single"},
        "holds lists of labels (a multi-label task) but AL_TASK=single; set AL_TASK=multi (or auto)",
    ),
    "label lists with a single-label model": (
        lambda b: {"AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", as_label_sets), "AL_MODEL": "setfit"},
        "holds label lists, so the task is multi-label: model=setfit is single-label only here",
    ),
    "an empty label list in the test file without AL_NONE_LABEL": (
        lambda b: {
            "AL_POOL_FILE": rows_with(b["dir"], "p.jsonl", as_label_sets),
            "AL_TEST_FILE": rows_with(b["dir"], "t.jsonl", lambda r: (as_label_sets(r), r[2].update(label=[]))),
        },
        "an empty label list in row 3; a text without any label is an answer only with AL_NONE_LABEL set",
    ),
}
# found on this machine, before Argilla is asked: exit 2 even when Argilla is down (checked with an unreachable URL)
LOCAL = {
    "empty and whitespace texts",
    "a 1 MB text",
    "bad UTF-8",
    "duplicate ids",
    "missing text column",
    "pool file not found",
    "unknown labels in the test set",
    "a label set with one class",
    "pool smaller than a batch",
    "invalid setting value",
    "status port exposed without a token",
    "AL_STATE_DIR is a file",
    "AL_STATE_DIR not writable",
    "the cache (embeddings) not writable",
    "emoji-only texts with the default model",
    "AL_POLL_INTERVAL=inf",
    "AL_POLL_INTERVAL=1e12",
    "AL_STOP_TIMEOUT=inf",
    "an empty AL_DATASET",
    "a label longer than Argilla allows",
    "a text with a NUL byte",
    "a Ray address that is not a Ray Client one",
    "label lists with AL_TASK=single",
    "label lists with a single-label model",
    "an empty label list in the test file without AL_NONE_LABEL",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_clearly(base, case, results, argilla_stack, dataset_name):
    setup, expected = CASES[case]
    env = base["env"] | setup(base)
    if case in LOCAL:  # Argilla down: a local problem must still be named (exit 2), not "cannot reach Argilla"
        env = argilla_down(env)
    answer = run_cli(env)
    results(f"bad input: {case}", shown(answer, base["dir"]) + (" (Argilla down)" if case in LOCAL else ""))
    results.last.update(nothing_written(argilla_stack, dataset_name, base["dir"] / "state"))
    # 75 (EX_TEMPFAIL): worth retrying later, so systemd restarts it; 2: needs a person, so systemd does not
    code = 75 if case == "unreachable Argilla URL" else 2
    assert answer.returncode == code, answer.stdout[-2000:] + answer.stderr
    message = answer.stderr.replace(str(base["dir"]), "<tmp>").strip().splitlines()
    assert len(message) == 1 and message[0].startswith("al-daemon: "), answer.stderr  # one line, no traceback
    assert expected in message[0], answer.stderr


def test_incompatible_existing_dataset(base, argilla_stack, dataset_name, results):
    gateway = ArgillaGateway(argilla_stack["url"], argilla_stack["owner_key"], "argilla", dataset_name)
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", ["yes", "no"]))
    answer = run_cli(base["env"])
    results("bad input: incompatible existing dataset", shown(answer, base["dir"]))
    results.last.update(nothing_written(argilla_stack, dataset_name, base["dir"] / "state"))
    assert answer.returncode == 2 and "is not compatible" in answer.stderr and "labels" in answer.stderr


def argilla_down(env: dict) -> dict:
    """The same settings with Argilla unreachable: a local problem is still named, with exit 2."""
    return env | {"AL_ARGILLA_URL": f"http://127.0.0.1:{free_port()}", "AL_CONNECT_TIMEOUT": "1"}


def test_corrupt_state_file(base, results, argilla_stack, dataset_name):
    state = base["dir"] / "state"
    state.mkdir()
    (state / "state.json").write_text('{"version": 1, "dataset": x}')
    answer = run_cli(argilla_down(base["env"]))
    results("bad input: corrupt state file", shown(answer, base["dir"]) + " (Argilla down)")
    results.last.update(nothing_written(argilla_stack, dataset_name, state, b'{"version": 1, "dataset": x}'))
    assert answer.returncode == 2 and "unreadable state" in answer.stderr and "al-daemon recover" in answer.stderr
    assert (state / "state.json").read_text() == '{"version": 1, "dataset": x}'  # left for the user to inspect


def test_state_cut_short_by_an_older_version(base, results, argilla_stack, dataset_name):
    """al-daemon 0.1 renamed a short write over the journal on a full disk: the message says how to recover."""
    state = base["dir"] / "state"
    state.mkdir()
    (state / "state.json").write_text('{"version": 1, "dataset": "d", "workspace": "argilla", "batches": [{"batch_')
    before = (state / "state.json").read_bytes()
    answer = run_cli(argilla_down(base["env"]))
    results("bad input: state cut short (full disk under 0.1)", shown(answer, base["dir"]) + " (Argilla down)")
    results.last.update(nothing_written(argilla_stack, dataset_name, state, before))
    assert answer.returncode == 2 and "the journal is cut short" in answer.stderr
    assert "`al-daemon recover`" in answer.stderr and "Traceback" not in answer.stderr


def test_state_of_another_dataset(base, results, argilla_stack, dataset_name):
    from daemon.pool import load_table

    pool = load_table(base["pool"], "text", "label", "id")
    StateStore(base["dir"] / "state").save(
        RunState(
            dataset="someone-else", workspace="argilla", pool_fingerprint=pool.fingerprint, labels=LABELS, batch_size=6
        )
    )
    before = (base["dir"] / "state" / "state.json").read_bytes()
    answer = run_cli(argilla_down(base["env"]))
    results("bad input: state of another dataset", shown(answer, base["dir"]) + " (Argilla down)")
    results.last.update(nothing_written(argilla_stack, dataset_name, base["dir"] / "state", before))
    assert answer.returncode == 2 and "belongs to another run (different dataset" in answer.stderr


def test_a_second_daemon_on_the_same_dataset(base, results, argilla_stack):
    env = base["env"]
    first = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        port = int(env["AL_STATUS_PORT"])
        assert wait_for(lambda: (get_status(port) or {}).get("state") == "waiting-for-annotators", 120)
        second = run_cli(env | {"AL_STATUS_PORT": str(free_port())})
        results("bad input: a second daemon on the same dataset", shown(second, base["dir"]))
        assert second.returncode == 2 and "another al-daemon is already running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert first.poll() is None  # the first one is untouched
        assert get_status(port)["run_by"].startswith(f"pid {first.pid} on ")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    state = json.loads((base["dir"] / "state" / "state.json").read_text())
    assert state["dataset"] == env["AL_DATASET"] and len(state["batches"]) == 1
    checks = audit(argilla_stack, env["AL_DATASET"], base["dir"] / "state")  # the first one's batch, once
    assert_clean(checks)
    assert checks["records"] == 6
    results.last.update(checks)


def test_a_record_added_by_hand_with_a_batch_id(base, results, argilla_stack, dataset_name):
    """Someone adds a record with a batch_id in Argilla: the next start names it and says what to do (it used to
    blame the state)."""
    import argilla as rg

    env = base["env"]
    first = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        port = int(env["AL_STATUS_PORT"])
        assert wait_for(lambda: (get_status(port) or {}).get("state") == "waiting-for-annotators", 120)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    dataset = client.datasets(dataset_name, workspace="argilla")
    dataset.records.log([rg.Record(id="note-by-hand", fields={"text": "a note"}, metadata={"batch_id": 7})])
    before = (base["dir"] / "state" / "state.json").read_bytes()
    answer = run_cli(env)
    results("bad input: a record added by hand with a batch_id", shown(answer, base["dir"]))
    assert answer.returncode == 2, answer.stderr
    assert "'note-by-hand'" in answer.stderr and "batch_id=7" in answer.stderr and "added by hand" in answer.stderr
    assert (base["dir"] / "state" / "state.json").read_bytes() == before
    records = list(dataset.records)
    assert len(records) == 7  # batch 0 (6) and the note: nothing more logged
    results.last.update({"records": len(records), "duplicate_records": 0, "labels_lost": 0, "labels_used_twice": 0})
