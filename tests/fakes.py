"""A small in-memory stand-in for the Argilla gateway (unit tests only; integration tests use the real server).

It keeps the :class:`daemon.gateway.Gateway` contract: ``tests/integration/test_gateway_contract.py`` runs the
same assertions against it and against the real gateway on the real local Argilla."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Sequence

from daemon.answers import Answer, is_set
from daemon.errors import ArgillaRefused
from daemon.gateway import DatasetSpec, Foreign, OutRecord, RecordView, _answer, incompatible, label_problem


class FakeGateway:
    """Holds records in a dict; tests play annotator with :meth:`submit` and :meth:`discard`."""

    def __init__(self) -> None:
        self.spec: DatasetSpec | None = None
        self.records: dict[str, OutRecord] = {}
        self.answers: dict[str, dict[str, tuple[str, Answer | None]]] = {}  # record id -> user -> (status, label)
        self.log_calls: list[list[str]] = []
        self.fail_next_log = False
        self.guidelines: list[str] = []
        self.errors: Counter[str] = Counter()
        self.dataset_id: str | None = None
        self.dataset_name: str = ""
        self.members = {"u1", "u2", "u3", "u4"}  # the workspace's annotators
        self.webhooks: dict[str, tuple[list[str], str]] = {}  # url -> (events, secret)
        self.foreign: dict[str, Foreign] = {}  # records someone else put in the dataset (no pool_index)

    def ping(self) -> None:
        return None

    def forget_dataset(self) -> None:
        return None

    def _check(self, spec: DatasetSpec) -> None:
        """What the real gateway's check_schema refuses: another kind of question, other options."""
        if self.spec.multi_label != spec.multi_label:
            which = "multi-label" if spec.multi_label else "single-label"
            raise incompatible(spec, [f"needs a {which} question named 'label' (has questions ['label'])"])
        if problem := label_problem(self.spec.options, spec):
            raise incompatible(spec, [problem])

    def ensure_dataset(self, spec: DatasetSpec) -> None:
        if self.spec is not None:
            self._check(spec)
        self.spec = spec
        self.dataset_id, self.dataset_name = "fake-id", self.dataset_name or spec.name

    def set_guidelines(self, text: str) -> None:
        self.guidelines.append(text)

    def user_names(self) -> dict[str, str]:
        return {"u1": "annotator"}

    def team(self) -> set[str]:
        return set(self.members)

    def log_records(self, records: Sequence[OutRecord]) -> None:
        if self.fail_next_log:
            self.fail_next_log = False
            raise RuntimeError("simulated crash while logging")
        for record in records:  # Argilla refuses (422) a suggestion that is not of the question's kind
            if record.suggestion is not None:
                assert is_set(record.suggestion) == self.spec.multi_label, record.suggestion
        self.log_calls.append([r.record_id for r in records])
        for record in records:
            self.records[record.record_id] = record

    def check_dataset(self, spec: DatasetSpec) -> None:
        if self.spec is None:
            raise ArgillaRefused(f"dataset {spec.name!r} not found in workspace {spec.workspace!r}")
        self._check(spec)

    def read_batch(self, batch_id: int) -> list[RecordView]:
        return [view for view in self.read_all() if self.records[view.record_id].batch_id == batch_id]

    def read_all(self) -> list[RecordView]:
        needed = self.spec.min_submitted if self.spec else 1
        views = []
        for record in self.records.values():
            given = self.answers.get(record.record_id, {})
            submitted = tuple((user, label) for user, (status, label) in given.items() if status == "submitted")
            views.append(
                RecordView(
                    record_id=record.record_id,
                    pool_index=record.pool_index,
                    status="completed" if len(submitted) >= needed else "pending",
                    submitted=submitted,
                    discarded=any(status == "discarded" for status, _ in given.values()),
                    relabel=record.relabel,
                    batch_id=record.batch_id,
                    round=record.round,
                    text=record.text,
                )
            )
        return views

    def read_foreign(self) -> list[Foreign]:
        return list(self.foreign.values())

    def max_batch_id(self) -> int | None:
        return max((r.batch_id for r in self.records.values()), default=None)

    def batch_record_ids(self, batch_id: int) -> list[str]:
        return [r.record_id for r in self.records.values() if r.batch_id == batch_id]

    def register_webhook(self, url: str, events: Sequence[str], description: str) -> str:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()  # Argilla's form: Standard Webhooks
        self.webhooks[url] = (list(events), secret)
        return secret

    def remove_webhook(self, url: str) -> int:
        return 1 if self.webhooks.pop(url, None) is not None else 0

    # -- the annotator's side --
    def batch(self, batch_id: int) -> list[OutRecord]:
        return [r for r in self.records.values() if r.batch_id == batch_id]

    def submit(self, record_id: str, label: str | list[str] | tuple[str, ...], user: str = "u1") -> None:
        """An answer as Argilla's API takes it (multi-label: a list of options), read back as the gateway does."""
        if isinstance(label, list):
            assert label and self.spec.multi_label, "Argilla refuses an empty or single-label list answer (422)"
            label = _answer(label, self.spec.none_label)
        self.answers.setdefault(record_id, {})[user] = ("submitted", label)

    def add_foreign(self, record_id: str, text: str) -> None:
        """A record added by hand (not by the daemon): no metadata, no answer yet."""
        self.foreign[record_id] = Foreign(record_id, text, ())

    def answer_foreign(self, record_id: str, label, user: str = "u1") -> None:
        if isinstance(label, list):
            label = _answer(label, self.spec.none_label if self.spec else None)
        record = self.foreign[record_id]
        kept = tuple((who, given) for who, given in record.submitted if who != user)
        self.foreign[record_id] = Foreign(record_id, record.text, (*kept, (user, label)))

    def discard(self, record_id: str, user: str = "u1") -> None:
        self.answers.setdefault(record_id, {})[user] = ("discarded", None)

    def delete(self, record_id: str) -> None:
        del self.records[record_id]
        self.answers.pop(record_id, None)
