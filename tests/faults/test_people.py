"""People change things in Argilla while the daemon runs: they edit, discard or delete answers the model was
already trained on, leave a batch unfinished, rename or delete the dataset, or try to change its question.
Each is done here through Argilla's REST API against the real server, then the daemon (in this process, TF-IDF
model) goes on; every outcome is audited against Argilla like the other faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from daemon.config import StuckAction
from daemon.errors import DatasetGone
from daemon.loop import Phase
from daemon.pool import load_table
from tests.conftest import tiny_rows, write_jsonl
from tests.faults.conftest import assert_clean, audit
from tests.integration.test_gateway import annotator_for
from tests.integration.test_stop_phases import LABELS, make

pytestmark = pytest.mark.faults


class Argilla:
    """A person's hands on the server: the owner's and the annotator's REST calls."""

    def __init__(self, stack: dict, dataset: str) -> None:
        self.owner = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]})
        self.annotator = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["annotator_key"]})
        self.id = next(d["id"] for d in self.owner.get("/api/v1/me/datasets").json()["items"] if d["name"] == dataset)

    def records(self) -> dict[int, dict]:
        items = self.owner.get(
            f"/api/v1/datasets/{self.id}/records", params={"include": "responses", "limit": 1000}
        ).json()["items"]
        return {int(r["metadata"]["pool_index"]): r for r in items}

    def answer(self, index: int, label: str | None, status: str = "submitted", values_for_discard=None) -> None:
        """Create or edit the annotator's response to a pool item (a discard may come without values, as the
        API allows)."""
        record = self.records()[index]
        values = {"label": {"value": label}} if label is not None else values_for_discard
        body = {"status": status, "values": values}
        mine = [r for r in record["responses"]]
        if mine:
            response = self.annotator.put(f"/api/v1/responses/{mine[0]['id']}", json=body)
        else:
            response = self.annotator.post(f"/api/v1/records/{record['id']}/responses", json=body)
        assert response.status_code in (200, 201), response.text

    def delete(self, index: int) -> None:
        record = self.records()[index]
        response = self.owner.delete(f"/api/v1/datasets/{self.id}/records", params={"ids": record["id"]})
        assert response.status_code == 204, response.text


@pytest.fixture
def run(argilla_stack, dataset_name, tmp_path):
    """A daemon on a tiny three-topic pool (batches of 6) with its first batch labelled and trained."""
    pool = load_table(write_jsonl(tmp_path / "pool.jsonl", tiny_rows(10)), "text", "label", "id")
    gold = dict(zip(pool.texts, pool.gold, strict=True))

    def daemon(**settings):
        made = make(argilla_stack, dataset_name, pool, tmp_path / "state")
        made.settings = made.settings.model_copy(update=settings)
        return made

    def label(count: int, name: str = dataset_name) -> int:
        """A person answers ``count`` records of their queue (oldest batch first)."""
        return annotator_for(argilla_stack, name, gold, LABELS).run(max_records=count).submitted

    first = daemon()
    first.start()
    assert label(6) == 6
    first.tick()
    assert first.state.rounds_trained == 1
    return {
        "daemon": first,
        "new": daemon,
        "label": label,
        "argilla": Argilla(argilla_stack, dataset_name),
        "gold": gold,
        "pool": pool,
        "state_dir": tmp_path / "state",
        "stack": argilla_stack,
        "name": dataset_name,
    }


def other(label: str) -> str:
    return next(x for x in LABELS if x != label)


def test_answers_edited_discarded_or_deleted_after_training(run, results, caplog):
    daemon, argilla = run["daemon"], run["argilla"]
    trained = dict(daemon.state.batches[0].labels)
    edited, withdrawn, deleted, undone = sorted(trained)[:4]
    argilla.answer(edited, other(trained[edited]))
    argilla.answer(withdrawn, None, status="discarded", values_for_discard=None)  # API discard without values
    argilla.delete(deleted)
    argilla.answer(undone, None, status="discarded", values_for_discard={})
    argilla.answer(undone, trained[undone])  # ...and submitted again: no change at all
    assert run["label"](6) == 6  # batch 1
    daemon.tick()
    state = daemon.state
    labels = state.training_labels()
    assert state.rounds_trained == 2
    assert labels[edited] == other(trained[edited]) and labels[undone] == trained[undone]
    assert withdrawn not in labels and deleted not in labels and {withdrawn, deleted} <= state.discarded()
    assert {(c.pool_index, c.kind) for c in state.changes} == {
        (edited, "relabelled"),
        (withdrawn, "withdrawn"),
        (deleted, "deleted"),
    }
    assert state.rounds[-1].labels == 12 - 2
    assert f"pool item {edited} (batch 0) relabelled in Argilla" in caplog.text
    checks = audit(run["stack"], run["name"], run["state_dir"])
    assert_clean(checks)
    results("answers edited / discarded / deleted after training", "next round trains on Argilla's answers", checks)


@pytest.mark.parametrize("action", ["proceed", "requeue"])
def test_a_stuck_batch_is_closed_early_and_its_stragglers_are_not_lost(run, results, action):
    daemon, argilla, label = run["daemon"], run["argilla"], run["label"]
    daemon.settings = daemon.settings.model_copy(update={"stuck_after": 60.0, "stuck_action": StuckAction(action)})
    assert label(4) == 4  # 2 of batch 1 left
    batch = daemon.state.current
    pending = sorted(set(batch.pool_indices) - set(argilla_done(argilla)))
    assert len(pending) == 2
    argilla.answer(pending[0], None, status="draft", values_for_discard={})  # someone started on one
    daemon.tick()
    assert daemon.state.rounds_trained == 1  # not stuck yet
    batch.logged_at = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    daemon.tick()
    assert daemon.state.rounds_trained == 2
    records = argilla.records()
    if action == "requeue":
        assert [records[i]["metadata"]["batch_id"] for i in pending] == [2, 2]  # moved into batch 2
        assert records[pending[0]]["responses"][0]["status"] == "draft"  # the draft survived the move
        assert label(5) == 5  # batch 2 = the 2 stragglers + 4 new, but for the draft:
        argilla.answer(pending[0], run["gold"][run["pool"].texts[pending[0]]])  # ...its author submits it
        daemon.tick()
        assert set(pending) <= daemon.state.training_labels().keys()
    else:
        assert [records[i]["metadata"]["batch_id"] for i in pending] == [1, 1] and daemon.state.batches[1].open
        assert label(7) == 7  # batch 2 and one straggler, late
        argilla.answer(pending[0], run["gold"][run["pool"].texts[pending[0]]])  # the draft, submitted late
        daemon.tick()
        labels = daemon.state.training_labels()
        assert set(pending) <= labels.keys() and [c.kind for c in daemon.state.changes] == ["late-label"] * 2
    # batches of 6: 6 + 4 in hand when batch 1 closed early; then a full batch 2 (proceed) and the 2 late
    # labels, or batch 2 = the 2 moved + 4 new (requeue)
    assert daemon.state.rounds_trained == 3 and len(daemon.state.training_labels()) == (
        18 if action == "proceed" else 16
    )
    checks = audit(run["stack"], run["name"], run["state_dir"])
    assert_clean(checks)
    results(f"stuck batch, AL_STUCK_ACTION={action}", "closed early; stragglers' labels used later", checks)


def argilla_done(argilla: Argilla) -> list[int]:
    return [i for i, r in argilla.records().items() if r["status"] == "completed"]


def test_dataset_renamed_while_running_is_followed(run, results, caplog):
    daemon, argilla = run["daemon"], run["argilla"]
    renamed = run["name"] + "-renamed"
    response = argilla.owner.patch(f"/api/v1/datasets/{argilla.id}", json={"name": renamed})
    assert response.status_code == 200, response.text
    assert run["label"](6, renamed) == 6
    daemon.tick()
    assert daemon.state.rounds_trained == 2 and daemon.state.dataset == renamed
    assert daemon.status()["dataset"] == renamed and f"was renamed to {renamed!r}" in caplog.text
    daemon.close()  # the "restart": release the state dir's lock
    again = run["new"]()  # still AL_DATASET=<old name>: found by id
    again.start()
    assert again.state.current.batch_id == 2 and again.gateway.max_batch_id() == 2
    checks = audit(run["stack"], renamed, run["state_dir"])
    assert_clean(checks)
    results("dataset renamed in Argilla mid-run", "followed by id, also after a restart", checks)


def test_dataset_deleted_while_running_degrades_without_a_crash_loop(run, results):
    daemon, argilla = run["daemon"], run["argilla"]
    labels_before = daemon.state.training_labels()
    assert argilla.owner.delete(f"/api/v1/datasets/{argilla.id}").status_code == 200
    for _ in range(3):
        daemon._next_try = 0.0
        daemon.tick()  # no exception escapes
        status = daemon.status()
        assert status["state"] == Phase.degraded.value and "is gone from Argilla" in status["reason"]
    assert not daemon.ready()[0]
    journal = daemon.store.load().training_labels()
    assert journal == labels_before  # every label stays in the journal
    daemon.close()
    with pytest.raises(DatasetGone, match="start a new run"):
        run["new"]().start()  # a restart refuses clearly (exit code 2; systemd does not restart on 2)
    checks = {"labels": len(journal), "labels_lost": len(labels_before.keys() - journal.keys()), "rounds": 1}
    results("dataset deleted in Argilla mid-run", "degraded with the reason; restart refused (exit 2)", checks)


def test_question_changes_argilla_refuses_and_those_it_allows(run, results):
    daemon, argilla = run["daemon"], run["argilla"]
    owner = argilla.owner
    question = next(q for q in owner.get(f"/api/v1/datasets/{argilla.id}/questions").json()["items"])
    options = question["settings"]["options"]
    # Argilla 2.x refuses new labels, changed label values and deleting the question of a published dataset
    more = options + [{"value": "travel", "text": "travel"}]
    settings = {"type": "label_selection", "options": more}
    refused = owner.patch(f"/api/v1/questions/{question['id']}", json={"settings": settings})
    assert refused.status_code == 422 and "number of options cannot be modified" in refused.text
    assert owner.delete(f"/api/v1/questions/{question['id']}").status_code == 422
    # titles may change: the daemon works with label values and goes on
    renamed = [{"value": o["value"], "text": o["text"].upper()} for o in options]
    settings = {"type": "label_selection", "options": renamed}
    allowed = owner.patch(f"/api/v1/questions/{question['id']}", json={"title": "Topic?", "settings": settings})
    assert allowed.status_code == 200, allowed.text
    assert run["label"](6) == 6
    daemon.tick()
    assert daemon.state.rounds_trained == 2
    # deleting the metadata the batches are found by: degraded with the schema problem, not a crash
    meta = owner.get(f"/api/v1/me/datasets/{argilla.id}/metadata-properties").json()["items"]
    batch_id = next(m for m in meta if m["name"] == "batch_id")
    assert owner.delete(f"/api/v1/metadata-properties/{batch_id['id']}").status_code == 200
    daemon.tick()
    status = daemon.status()
    assert status["state"] == Phase.degraded.value and "needs integer metadata 'batch_id'" in status["reason"]
    checks = audit(run["stack"], run["name"], run["state_dir"])
    assert_clean(checks)
    results(
        "question changed in Argilla (labels added: refused by Argilla; titles: allowed; batch_id metadata deleted)",
        "goes on; degraded with the schema problem",
        checks,
    )
