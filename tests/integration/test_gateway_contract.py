"""The Gateway contract: the same assertions against the unit tests' fake and the real gateway on the real local
Argilla 2.8. Whatever the loop relies on (ids and names, idempotent logging, what a record view says after an
answer or a discard, the errors' kinds, webhooks) is asserted here once, so the fake cannot drift from the server.
"""

from __future__ import annotations

import collections
import dataclasses

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from daemon.errors import ArgillaError, ArgillaRefused, SchemaError
from daemon.gateway import ArgillaGateway, DatasetSpec, Gateway, OutRecord
from tests.fakes import FakeGateway

LABELS = ["food", "sport", "tech"]


class FakeSide:
    """The fake, with an annotator who answers through it."""

    def __init__(self, dataset: str) -> None:
        self.gateway = FakeGateway()
        self.annotator_id = "u1"

    def connect_again(self) -> Gateway:
        return self.gateway  # one in-memory dataset: a second client sees the same one

    def add_foreign(self, record_id: str, text: str) -> None:
        self.gateway.add_foreign(record_id, text)

    def answer_foreign(self, record_id: str, label: str) -> None:
        self.gateway.answer_foreign(record_id, label, self.annotator_id)

    def answer(self, record_id: str, label: str | list[str] | None) -> None:
        if label is None:
            self.gateway.discard(record_id, self.annotator_id)
        else:
            self.gateway.submit(record_id, label, self.annotator_id)


class ArgillaSide:
    """The real gateway, with the stack's annotator user answering over Argilla's HTTP API (as the UI does)."""

    def __init__(self, stack: dict, dataset: str) -> None:
        self.stack, self.dataset = stack, dataset
        self.gateway = self.connect_again()
        self.http = httpx.Client(
            base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["annotator_key"]}, timeout=30
        )
        self.owner = httpx.Client(base_url=stack["url"], headers={"X-Argilla-Api-Key": stack["owner_key"]}, timeout=30)
        self.annotator_id = str(self.http.get("/api/v1/me").raise_for_status().json()["id"])

    def connect_again(self) -> Gateway:
        return ArgillaGateway(self.stack["url"], self.stack["owner_key"], "argilla", self.dataset)

    def add_foreign(self, record_id: str, text: str) -> None:
        """A record added by hand in Argilla: text only, no metadata."""
        body = {"items": [{"external_id": record_id, "fields": {"text": text}}]}
        response = self.owner.post(f"/api/v1/datasets/{self.gateway.dataset_id}/records/bulk", json=body)
        assert response.status_code in (200, 201), response.text

    def answer_foreign(self, record_id: str, label: str) -> None:
        self.answer(record_id, label)

    def answer(self, record_id: str, label: str | list[str] | None) -> None:
        dataset_id = self.gateway.dataset_id
        items = self.owner.get(f"/api/v1/datasets/{dataset_id}/records", params={"limit": 1000}).json()["items"]
        uuid = next(item["id"] for item in items if item["external_id"] == record_id)
        body = (
            {"status": "discarded", "values": {}}
            if label is None
            else {"status": "submitted", "values": {"label": {"value": label}}}
        )
        assert self.http.post(f"/api/v1/records/{uuid}/responses", json=body).status_code == 201


@pytest.fixture(params=["fake", pytest.param("argilla", marks=pytest.mark.integration)])
def side(request, dataset_name):
    if request.param == "fake":
        return FakeSide(dataset_name)
    return ArgillaSide(request.getfixturevalue("argilla_stack"), dataset_name)


def out(batch_id: int, indices, relabel: int = 0) -> list[OutRecord]:
    return [
        OutRecord(
            record_id=f"pool-{i}" + (f"-relabel-{relabel}" if relabel else ""),
            pool_index=i,
            batch_id=batch_id,
            round=batch_id,
            text=f"text number {i}",
            al_score=0.5,
            relabel=relabel,
        )
        for i in indices
    ]


def test_a_new_dataset_has_an_id_its_name_and_no_batch(side, dataset_name):
    gateway = side.gateway
    assert isinstance(gateway.errors, collections.Counter) and not gateway.errors
    gateway.ping()
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS, guidelines="how to label"))
    assert isinstance(gateway.dataset_id, str) and gateway.dataset_id
    assert gateway.dataset_name == dataset_name
    assert gateway.max_batch_id() is None
    assert gateway.read_all() == [] and gateway.read_batch(0) == [] and gateway.batch_record_ids(0) == []
    again = side.connect_again()
    again.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))  # existing and compatible: accepted
    assert again.dataset_id == gateway.dataset_id


def test_logging_twice_keeps_one_record_each_and_batches_are_found(side, dataset_name):
    gateway = side.gateway
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.log_records(out(0, range(4)))
    gateway.log_records(out(0, range(4)))  # a retry after a crash while logging
    gateway.log_records(out(1, [4, 5]) + out(1, [2], relabel=1))
    assert sorted(v.record_id for v in gateway.read_batch(0)) == [f"pool-{i}" for i in range(4)]
    assert sorted(gateway.batch_record_ids(1)) == ["pool-2-relabel-1", "pool-4", "pool-5"]
    assert gateway.max_batch_id() == 1
    views = {v.record_id: v for v in gateway.read_all()}
    assert len(views) == 7
    relabel = views["pool-2-relabel-1"]
    assert (relabel.pool_index, relabel.relabel, relabel.batch_id) == (2, 1, 1)
    first = views["pool-0"]
    assert (first.pool_index, first.batch_id, first.round, first.text) == (0, 0, 0, "text number 0")
    assert (first.status, first.submitted, first.discarded, first.relabel) == ("pending", (), False, 0)
    gateway.forget_dataset()  # the next call looks the dataset up afresh
    assert len(gateway.read_batch(1)) == 3


def test_an_answer_completes_a_record_and_a_discard_does_not(side, dataset_name):
    gateway = side.gateway
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.log_records(out(0, range(3)))
    side.answer("pool-0", "sport")
    side.answer("pool-1", None)
    views = {v.record_id: v for v in gateway.read_batch(0)}
    assert (views["pool-0"].status, views["pool-0"].submitted) == ("completed", ((side.annotator_id, "sport"),))
    assert (views["pool-1"].status, views["pool-1"].submitted, views["pool-1"].discarded) == ("pending", (), True)
    assert (views["pool-2"].status, views["pool-2"].discarded) == ("pending", False)
    assert {v.record_id: v for v in gateway.read_all()}["pool-0"] == views["pool-0"]


def test_a_dataset_that_does_not_fit_is_a_schema_error(side, dataset_name):
    gateway = side.gateway
    with pytest.raises(ArgillaRefused, match="not found"):
        side.connect_again().check_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.check_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    other = DatasetSpec(dataset_name, "argilla", ["x", "y"])
    expected = r"has labels \['food', 'sport', 'tech'\], the daemon expects \['x', 'y'\]"
    with pytest.raises(SchemaError, match=expected):
        gateway.check_dataset(other)
    with pytest.raises(SchemaError, match=expected):
        side.connect_again().ensure_dataset(other)
    assert issubclass(SchemaError, ArgillaError) and issubclass(ArgillaRefused, ArgillaError)


def test_guidelines_people_and_webhooks(side, dataset_name):
    gateway = side.gateway
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS, guidelines="how to label"))
    gateway.set_guidelines("how to label\n\n## Progress\n")
    names = gateway.user_names()
    assert names and all(isinstance(k, str) and isinstance(v, str) for k, v in names.items())
    team = gateway.team()
    assert side.annotator_id in team and all(isinstance(member, str) for member in team)
    url = f"http://127.0.0.1:1/webhook/{dataset_name}"
    secret = gateway.register_webhook(url, ["response.created"], "contract test")
    Webhook(secret)  # a Standard Webhooks secret the receiver can verify with
    assert gateway.remove_webhook(url) == 1
    assert gateway.remove_webhook(url) == 0


def test_a_multi_label_dataset_takes_label_sets_and_none_of_these(side, dataset_name):
    gateway = side.gateway
    spec = DatasetSpec(dataset_name, "argilla", LABELS, multi_label=True, none_label="none of these")
    gateway.ensure_dataset(spec)
    records = [
        dataclasses.replace(record, suggestion=suggestion, suggestion_score=score, agent="model:round-1")
        for record, (suggestion, score) in zip(
            out(0, range(4)),
            [(("food", "sport"), (0.9, 0.6)), ((), ()), (("tech",), (0.7,)), (None, None)],
            strict=True,
        )
    ]
    gateway.log_records(records)  # label sets as suggestions with a score per label; the empty set as "none"
    side.answer("pool-0", ["sport", "food"])
    side.answer("pool-1", ["none of these"])
    side.answer("pool-2", ["tech", "none of these"])  # "none" beside a label: the label counts
    views = {v.record_id: v for v in gateway.read_batch(0)}
    me = side.annotator_id
    assert views["pool-0"].submitted == ((me, ("food", "sport")),) and views["pool-0"].status == "completed"
    assert views["pool-1"].submitted == ((me, ()),)
    assert views["pool-2"].submitted == ((me, ("tech",)),)
    assert views["pool-3"].status == "pending"
    gateway.check_dataset(spec)
    with pytest.raises(SchemaError, match="needs a single-label question"):
        side.connect_again().ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    with pytest.raises(SchemaError, match="the daemon expects"):  # the "none" option is part of the question
        gateway.check_dataset(DatasetSpec(dataset_name, "argilla", LABELS, multi_label=True))


def test_records_the_daemon_did_not_log_are_read_with_their_answers(side, dataset_name):
    gateway = side.gateway
    gateway.ensure_dataset(DatasetSpec(dataset_name, "argilla", LABELS))
    gateway.log_records(out(0, range(2)))
    side.add_foreign("mine-1", "a text labelled by hand")
    side.add_foreign("mine-2", "a text nobody answered")
    side.answer_foreign("mine-1", "tech")
    found = {record.record_id: record for record in gateway.read_foreign()}
    assert sorted(found) == ["mine-1", "mine-2"]  # the daemon's own records are not among them
    assert found["mine-1"].text == "a text labelled by hand"
    assert found["mine-1"].submitted == ((side.annotator_id, "tech"),)
    assert found["mine-2"].submitted == ()
    assert sorted(v.record_id for v in gateway.read_all()) == ["pool-0", "pool-1"]
