from daemon.batches import assess, consensus
from daemon.gateway import RecordView


def view(index, status="pending", labels=(), discarded=False):
    return RecordView(
        record_id=f"pool-{index}",
        pool_index=index,
        status=status,
        submitted=tuple((f"u{n}", label) for n, label in enumerate(labels)),
        discarded=discarded,
    )


def test_all_completed_is_complete_with_labels():
    progress = assess([1, 2], [view(1, "completed", ["A"]), view(2, "completed", ["B"])])
    assert progress.complete
    assert progress.labels == {1: "A", 2: "B"}
    assert progress.discarded_indices == []


def test_discarded_counts_as_done_but_is_never_a_label():
    progress = assess([1, 2], [view(1, "completed", ["A"]), view(2, "pending", discarded=True)])
    assert progress.complete
    assert progress.labels == {1: "A"}
    assert progress.discarded_indices == [2]
    assert progress.as_dict()["discarded"] == 1


def test_one_pending_record_keeps_the_batch_open():
    progress = assess([1, 2, 3], [view(1, "completed", ["A"]), view(2, discarded=True), view(3)])
    assert not progress.complete
    assert progress.pending == 1
    assert progress.done == 2


def test_completed_wins_over_a_discard_by_another_annotator():
    progress = assess([1], [view(1, "completed", ["A"], discarded=True)])
    assert progress.labels == {1: "A"} and progress.discarded_indices == []


def test_record_deleted_from_argilla_counts_as_discarded():
    progress = assess([1, 2], [view(1, "completed", ["A"])])
    assert progress.complete
    assert progress.missing == 1
    assert progress.discarded_indices == [2]


def test_empty_batch_is_never_complete():
    assert not assess([], []).complete


def test_consensus_is_majority_then_first():
    assert consensus(["A", "B", "B"]) == "B"
    assert consensus(["B", "A"]) == "B"


def test_changes_after_a_batch_closed_follow_argilla_except_a_return_to_pending():
    from daemon.batches import apply_changes, find_changes
    from daemon.state import Batch

    batch = Batch(batch_id=0, round=0, pool_indices=[1, 2, 3, 4], record_ids=[], complete=True)
    batch.labels, batch.discarded, batch.open = {1: "a", 2: "b"}, [3], [4]
    views = {
        1: RecordView("pool-1", 1, "pending", (), False),  # its answer went back to draft: the label stays
        2: RecordView("pool-2", 2, "completed", (("u", "a"), ("v", "a"), ("w", "b")), False),  # majority a
        3: RecordView("pool-3", 3, "completed", (("u", "b"),), True),  # discarded once, now submitted
        4: RecordView("pool-4", 4, "pending", (), False),  # still open
    }
    changes = find_changes([batch], views, round_number=5)
    assert [(c.pool_index, c.kind, c.old, c.new, c.round) for c in changes] == [
        (2, "relabelled", "b", "a", 5),
        (3, "restored", None, "b", 5),
    ]
    apply_changes([batch], changes, views)
    assert batch.labels == {1: "a", 2: "a", 3: "b"} and batch.discarded == [] and batch.open == [4]
    assert batch.annotators[2] == ["u", "v", "w"]
    assert find_changes([batch], views, round_number=6) == []  # applied once, found once
