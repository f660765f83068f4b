"""The gateway against the real local Argilla 2.8 server (no mocks)."""

import pytest

from daemon.errors import ArgillaRefused, ArgillaUnavailable, SchemaError
from daemon.gateway import ArgillaGateway, DatasetSpec, OutRecord
from daemon.simulate import SimulatedAnnotator, SimulationConfig

pytestmark = pytest.mark.integration

LABELS = ["food", "sport", "tech"]


def gateway_for(stack, name, key=None, workspace="argilla"):
    return ArgillaGateway(stack["url"], key or stack["owner_key"], workspace, name)


def records(batch_id, indices, suggestion=None):
    return [
        OutRecord(
            record_id=f"pool-{i}",
            pool_index=i,
            batch_id=batch_id,
            round=batch_id,
            text=f"text number {i}",
            al_score=0.1 * i,
            suggestion=suggestion,
            suggestion_score=0.75 if suggestion else None,
            agent="tfidf-logreg:round-1" if suggestion else None,
        )
        for i in indices
    ]


def annotator_for(stack, name, gold: dict[str, str], labels: list[str]) -> SimulatedAnnotator:
    config = SimulationConfig(argilla_url=stack["url"], api_key=stack["annotator_key"], dataset=name, delay=0)
    return SimulatedAnnotator(config, gold, labels)


def annotator(stack, name):
    return annotator_for(stack, name, {f"text number {i}": LABELS[i % 3] for i in range(100)}, LABELS)


def test_create_then_accept_existing_then_refuse_incompatible(argilla_stack, dataset_name):
    gateway = gateway_for(argilla_stack, dataset_name)
    spec = DatasetSpec(dataset_name, "argilla", LABELS, guidelines="how to label")
    gateway.ensure_dataset(spec)
    gateway_for(argilla_stack, dataset_name).ensure_dataset(spec)  # existing and compatible: fine
    with pytest.raises(SchemaError, match=r"has labels \['food', 'sport', 'tech'\], the daemon expects"):
        gateway_for(argilla_stack, dataset_name).ensure_dataset(DatasetSpec(dataset_name, "argilla", ["x", "y"]))


def test_wrong_key_and_workspace_are_refused(argilla_stack, dataset_name):
    with pytest.raises(ArgillaRefused, match="API key"):
        gateway_for(argilla_stack, dataset_name, key="wrong.key").ping()
    with pytest.raises(ArgillaRefused, match="workspace 'nope' does not exist"):
        gateway_for(argilla_stack, dataset_name, workspace="nope").ensure_dataset(
            DatasetSpec(dataset_name, "nope", LABELS)
        )


def test_logging_is_idempotent_and_batches_are_found(argilla_stack, dataset_name):
    gateway = gateway_for(argilla_stack, dataset_name)
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    assert gateway.max_batch_id() is None
    gateway.log_records(records(0, range(5)))
    gateway.log_records(records(0, range(5)))
    gateway.log_records(records(1, range(5, 8), suggestion="sport"))
    assert len(gateway.read_batch(0)) == 5
    assert len(gateway.read_batch(1)) == 3
    assert gateway.max_batch_id() == 1


def test_read_batch_sees_submits_discards_and_suggestions(argilla_stack, dataset_name):
    import argilla as rg

    gateway = gateway_for(argilla_stack, dataset_name)
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.log_records(records(0, range(3), suggestion="tech"))
    person = annotator(argilla_stack, dataset_name)
    queue = person.pending()
    assert len(queue) == 3
    by_index = {r["metadata"]["pool_index"]: r for r in queue}
    person.answer(by_index[0])  # submit the gold label "food"
    person.config.discard_rate = 1.0
    person.answer(by_index[1])  # discard
    assert person.counts.errors == 0  # the server answered 201 to both (osmem patch works)
    views = {v.pool_index: v for v in gateway.read_batch(0)}
    assert views[0].status == "completed" and [label for _, label in views[0].submitted] == ["food"]
    assert views[1].status == "pending" and views[1].discarded and views[1].submitted == ()
    assert views[2].status == "pending" and not views[2].discarded
    assert len(person.pending()) == 1
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    record = next(iter(client.datasets(dataset_name, workspace="argilla").records(with_suggestions=True)))
    suggestion = record.suggestions["label"]
    assert suggestion.value == "tech" and suggestion.agent == "tfidf-logreg:round-1" and suggestion.score == 0.75
    assert {"batch_id", "pool_index", "round", "al_score"} <= set(record.metadata)


def test_guidelines_update_and_user_names(argilla_stack, dataset_name):
    import argilla as rg

    gateway = gateway_for(argilla_stack, dataset_name)
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS, guidelines="how to label"))
    gateway.log_records(records(0, range(3)))
    gateway.set_guidelines("how to label\n\n## Progress\n\n- Round 3: 60 labels in hand.\n")
    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    assert "Round 3: 60 labels" in client.datasets(dataset_name, workspace="argilla").settings.guidelines
    names = gateway.user_names()
    assert {"argilla", "annotator"} <= set(names.values())
    assert names[str(client.me.id)] == "argilla"


def test_failed_calls_are_counted_by_kind(argilla_stack, dataset_name):
    from tests.conftest import free_port

    down = ArgillaGateway(f"http://127.0.0.1:{free_port()}", "k", "argilla", dataset_name, timeout=2)
    with pytest.raises(ArgillaUnavailable):
        down.ping()
    wrong = gateway_for(argilla_stack, dataset_name, key="wrong.key")
    with pytest.raises(ArgillaRefused):
        wrong.ping()
    assert down.errors == {"unavailable": 1} and wrong.errors == {"refused": 1}


def test_a_dataset_from_an_older_version_gets_the_relabel_metadata_and_relabel_records_read_back(
    argilla_stack, dataset_name
):
    import argilla as rg

    client = rg.Argilla(api_url=argilla_stack["url"], api_key=argilla_stack["owner_key"])
    old = rg.Settings(  # as created before `relabel` existed: Argilla then refuses unknown metadata
        fields=[rg.TextField("text")],
        questions=[rg.LabelQuestion("label", labels=LABELS)],
        metadata=[rg.IntegerMetadataProperty(n) for n in ("batch_id", "pool_index", "round")]
        + [rg.FloatMetadataProperty("al_score")],
    )
    rg.Dataset(dataset_name, workspace="argilla", settings=old, client=client).create()
    gateway = gateway_for(argilla_stack, dataset_name)
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    relabel = OutRecord(
        record_id="pool-3-relabel-1", pool_index=3, batch_id=1, round=1, text="text number 3", relabel=1
    )
    gateway.log_records(records(0, [3]) + [relabel])
    views = {view.record_id: view for view in gateway.read_all()}
    assert views["pool-3"].relabel == 0 and views["pool-3-relabel-1"].relabel == 1
    assert views["pool-3-relabel-1"].pool_index == 3
    assert [v.record_id for v in gateway.read_batch(1)] == ["pool-3-relabel-1"]
    assert gateway.team() >= {str(u.id) for u in client.users if u.username == "annotator"}
    assert str(client.me.id) not in gateway.team()
