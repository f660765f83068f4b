"""The status document: fields move as rounds go by, from the state alone."""

from daemon.report import guidelines_note
from tests.unit.conftest import label_batch, make_daemon


def test_status_fields_change_across_rounds(finished_run):
    _, daemon, statuses = finished_run
    rounds = [s["round"] for s in statuses]
    assert rounds == [1, 2, 3, 4]
    labels = [s["labels"] for s in statuses]
    assert labels == [6, 12, 18, 24]
    assert [s["batch"]["batch_id"] for s in statuses[:3]] == [1, 2, 3]
    assert all(s["batch"]["done"] == 0 and s["batch"]["total"] == 6 for s in statuses[:3])
    assert [s["state"] for s in statuses] == ["waiting-for-annotators"] * 3 + ["stopped"]
    kappa = statuses[-1]["signals"]["kappa_average"]
    assert kappa["stops"] and kappa["threshold"] == 0.99
    assert [r for r, _ in kappa["history"]] == [1, 2, 3]  # no kappa before a second model exists
    accuracy = statuses[-1]["accuracy"]
    assert accuracy["best"] >= accuracy["last"] and accuracy["best_round"] in range(4)
    assert statuses[-1]["signals"]["max_iterations"] == {
        "value": 4.0,
        "threshold": 4,
        "fired": True,
        "stops": True,
        "history": [[0, 1.0], [1, 2.0], [2, 3.0], [3, 4.0]],
    }
    assert set(statuses[-1]["last_round"]["seconds"]) >= {"read", "train", "evaluate"}
    assert "query" in statuses[1]["last_round"]["seconds"] and "log" in statuses[1]["last_round"]["seconds"]
    assert statuses[-1]["stop"]["reason"].startswith("max_rounds")
    assert daemon.status()["export"]["path"].endswith("export")


def test_batch_progress_counts_each_status(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    records = world["gateway"].batch(0)
    world["gateway"].submit(records[0].record_id, "food")
    world["gateway"].discard(records[1].record_id)
    daemon.tick()
    batch = daemon.status()["batch"]
    assert (batch["batch_id"], batch["total"], batch["done"]) == (0, 6, 2)
    assert (batch["completed"], batch["discarded"], batch["pending"]) == (1, 1, 4)


def test_guidelines_note_is_published_to_the_guidelines(world):
    daemon = make_daemon(world, stop_criteria=[])
    daemon.start()
    for batch_id in range(2):
        label_batch(world, batch_id)
        daemon.tick()
    notes = world["gateway"].guidelines
    assert len(notes) == 2 and "Round 2: 12 labels in hand" in notes[-1]
    assert notes[-1].startswith(daemon.spec().guidelines)
    assert "Labelling is finished" in guidelines_note(
        daemon.status() | {"stop": daemon.status()["stop"] | {"reason": "kappa_average fired"}}
    )


def test_publishing_progress_can_be_switched_off(world):
    daemon = make_daemon(world, stop_criteria=[], publish_progress=False)
    daemon.start()
    label_batch(world, 0)
    daemon.tick()
    assert world["gateway"].guidelines == []


def test_a_restarted_stopped_run_reports_from_the_journal(finished_run):
    world, daemon, statuses = finished_run
    again = make_daemon(world, max_rounds=4)
    again.start()
    status = again.status()
    assert status["state"] == "stopped" and status["round"] == 4
    expected = {"batch_id": 3, "total": 6, "done": 6, "completed": 6, "discarded": 0, "pending": 0}
    assert {key: status["batch"][key] for key in expected} == expected
    assert status["unlabelled"] == 60 - 24 == statuses[-1]["unlabelled"]
    assert status["export"]["path"] == str(daemon.settings.export_path)
    assert status["signals"] == statuses[-1]["signals"]
