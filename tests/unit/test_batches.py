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
