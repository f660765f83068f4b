"""Everything that talks to Argilla: the only module that imports the `argilla` SDK.

Speaks the daemon's domain (batches, pool indices, labels) to the loop and Argilla's (records, responses,
suggestions) to the server. Transport failures and 5xx become :class:`ArgillaUnavailable` (retryable);
refusals (bad key, missing workspace, bad request) become :class:`ArgillaRefused`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import httpx

from daemon.answers import Answer, canonical
from daemon.errors import ArgillaRefused, ArgillaUnavailable, DatasetGone, SchemaError

log = logging.getLogger(__name__)

TEXT_FIELD = "text"
LABEL_QUESTION = "label"
INTEGER_METADATA = ("batch_id", "pool_index", "round", "relabel")  # relabel: k-th extra request for the text
FLOAT_METADATA = ("al_score",)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the daemon's dataset must look like."""

    name: str
    workspace: str
    labels: list[str]
    min_submitted: int = 1
    guidelines: str = ""
    multi_label: bool = False  # a MultiLabelQuestion: an answer is a set of labels
    none_label: str | None = None  # multi-label: the extra option meaning "none of these" (an empty set)

    @classmethod
    def of_run(cls, settings, labels: list[str], multi_label: bool, guidelines: str = "") -> DatasetSpec:
        """The dataset a run with these settings (``daemon.config.Settings``) and labels needs."""
        return cls(
            name=settings.dataset,
            workspace=settings.workspace,
            labels=list(labels),
            min_submitted=settings.annotators_per_record,
            guidelines=guidelines,
            multi_label=multi_label,
            none_label=settings.none_label if multi_label else None,
        )

    @property
    def options(self) -> list[str]:
        """The question's options: the labels, and the "none of these" option where there is one."""
        return [*self.labels, self.none_label] if self.multi_label and self.none_label else list(self.labels)


@dataclasses.dataclass(frozen=True)
class OutRecord:
    """A pool item to put in front of annotators."""

    record_id: str
    pool_index: int
    batch_id: int
    round: int
    text: str
    al_score: float | None = None
    suggestion: Answer | None = None  # a label, or (multi-label) a set of labels
    suggestion_score: float | tuple[float, ...] | None = None  # its probability, or each label's
    agent: str | None = None
    relabel: int = 0  # ActiveLab: >0 asks once more for the labels of a text already labelled (pool_index)


@dataclasses.dataclass(frozen=True)
class RecordView:
    """What Argilla holds for one record of a batch."""

    record_id: str
    pool_index: int
    status: str  # the record's: "pending" | "completed"
    submitted: tuple[tuple[str, Answer], ...]  # (user id, label or label set) of each submitted response
    discarded: bool
    relabel: int = 0  # 0: the text's first record; k: its k-th relabel request
    batch_id: int | None = None  # the record's metadata (for `al-daemon recover`)
    round: int | None = None
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class Foreign:
    """A record of the dataset that the daemon did not log (no ``pool_index`` metadata): a warm start adopts its
    answers (:mod:`daemon.seeds`)."""

    record_id: str
    text: str | None
    submitted: tuple[tuple[str, Answer], ...]  # (user id, label or label set), in submit order


class Gateway(Protocol):
    """Every Argilla operation the daemon uses: the real :class:`ArgillaGateway` below, and the unit tests' fake
    (``tests/fakes.py``); ``tests/integration/test_gateway_contract.py`` runs the same assertions on both.

    Failures are :class:`~daemon.errors.ArgillaError`: ``ArgillaUnavailable`` (retry), ``ArgillaRefused`` (a person
    must act; ``DatasetGone`` when the run's dataset was deleted), ``SchemaError`` (the dataset does not fit).
    """

    dataset_id: str | None  # known once the dataset was found or created; set it to follow a run's dataset by id
    dataset_name: str  # as Argilla calls it now (a rename is followed)
    errors: collections.Counter[str]  # failed calls by kind ("unavailable", "refused"), for /metrics

    def ping(self) -> None: ...

    def ensure_dataset(self, spec: DatasetSpec) -> None: ...

    def check_dataset(self, spec: DatasetSpec) -> None: ...

    def forget_dataset(self) -> None: ...

    def log_records(self, records: Sequence[OutRecord]) -> None: ...

    def read_batch(self, batch_id: int) -> list[RecordView]: ...

    def read_all(self) -> list[RecordView]: ...

    def max_batch_id(self) -> int | None: ...

    def read_foreign(self) -> list[Foreign]: ...

    def batch_record_ids(self, batch_id: int) -> list[str]: ...

    def set_guidelines(self, text: str) -> None: ...

    def user_names(self) -> dict[str, str]: ...

    def team(self) -> set[str]: ...

    def register_webhook(self, url: str, events: Sequence[str], description: str) -> str: ...

    def remove_webhook(self, url: str) -> int: ...


def _translate(call: Callable[..., T]) -> Callable[..., T]:
    """Map SDK and transport exceptions to the daemon's two kinds, counting them on the gateway."""

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        try:
            return _translated(call, self, *args, **kwargs)
        except (ArgillaUnavailable, ArgillaRefused) as exc:
            kind = "unavailable" if isinstance(exc, ArgillaUnavailable) else "refused"
            if not getattr(exc, "_counted", False):
                self.errors[kind] += 1
                exc._counted = True  # nested calls count once
            raise

    return wrapper


def _translated(call, *args, **kwargs):
    """Run ``call``; transport trouble and 5xx become ArgillaUnavailable, refusals ArgillaRefused."""
    from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError, ArgillaError

    try:
        return call(*args, **kwargs)
    except (httpx.TransportError, ConnectionError, TimeoutError) as exc:
        raise ArgillaUnavailable(f"Argilla unreachable: {type(exc).__name__}: {exc}") from None
    except ArgillaCredentialsError:
        raise ArgillaRefused("Argilla refused the API key (check AL_ARGILLA_API_KEY)") from None
    except (ArgillaAPIError, httpx.HTTPStatusError) as exc:
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else exc.status_code
        raise _status_error(status or 500, str(exc)) from None
    except ArgillaError as exc:
        cause = exc.__cause__ or exc.__context__
        raise ArgillaRefused(f"Argilla SDK error: {cause or exc}"[:600]) from None


def _status_error(status: int, detail: str) -> Exception:
    if status >= 500:
        return ArgillaUnavailable(f"Argilla server error {status}: {detail[:300]}")
    if status == 401:
        return ArgillaRefused("Argilla refused the API key (check AL_ARGILLA_API_KEY)")
    return ArgillaRefused(f"Argilla refused the request ({status}): {detail[:500]}")


class ArgillaGateway:
    """The real gateway, over the argilla 2.x SDK."""

    def __init__(self, api_url: str, api_key: str, workspace: str, dataset: str, timeout: int = 30) -> None:
        self.api_url = api_url
        self._api_key = api_key
        self.workspace = workspace
        self.dataset_name = dataset
        self.timeout = timeout
        self._client = None
        self._dataset = None
        self._me = None
        self.dataset_id: str | None = None  # known once found or created: followed across renames
        self.none_label: str | None = None  # the spec's "none of these" option: read back as an empty label set
        self.errors: collections.Counter[str] = collections.Counter()  # failed calls by kind, for /metrics

    # ---- connection ----------------------------------------------------------------------------------
    @_translate
    def _connect(self):
        if self._client is None:
            import argilla as rg
            from argilla.records import _dataset_records

            # the SDK draws a progress bar on every log call: noise in a daemon's log
            _dataset_records.tqdm = functools.partial(_dataset_records.tqdm, disable=True)
            logging.getLogger("argilla.sdk").setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client = rg.Argilla(api_url=self.api_url, api_key=self._api_key, timeout=self.timeout, retries=1)
            self._me = client.me
            self._client = client
        return self._client

    @_translate
    def ping(self) -> None:
        """Raise unless Argilla answers and accepts the key."""
        client = self._connect()
        client.api.http_client.get("/api/v1/me").raise_for_status()

    @_translate
    def _get_dataset(self):
        if self._dataset is None:
            client = self._connect()
            if client.workspaces(self.workspace) is None:
                raise ArgillaRefused(f"workspace {self.workspace!r} does not exist in Argilla at {self.api_url}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "dataset not found" is a warning in the SDK
                if self.dataset_id is not None:
                    dataset = client.datasets(id=self.dataset_id)
                    if dataset is None:
                        raise DatasetGone(
                            f"dataset {self.dataset_name!r} (id {self.dataset_id}) is gone from Argilla: deleted by "
                            "someone? Every label up to the last closed batch is in the state; `al-daemon export` "
                            "exports them; to go on, start a new run (new AL_DATASET and AL_STATE_DIR)"
                        )
                    dataset = dataset.get()  # by id, the SDK leaves the settings unloaded
                    self._follow_rename(dataset)
                else:
                    dataset = client.datasets(self.dataset_name, workspace=self.workspace)
            if dataset is None:
                raise ArgillaRefused(f"dataset {self.dataset_name!r} not found in workspace {self.workspace!r}")
            self._dataset = dataset
            self.dataset_id = str(dataset.id)
        return self._dataset

    def _follow_rename(self, dataset) -> None:
        if dataset.name != self.dataset_name:
            log.warning(
                "dataset %r was renamed to %r in Argilla; following it by id (set AL_DATASET=%s for new runs)",
                self.dataset_name,
                dataset.name,
                dataset.name,
            )
            self.dataset_name = dataset.name

    def forget_dataset(self) -> None:
        self._dataset = None

    # ---- schema --------------------------------------------------------------------------------------
    @_translate
    def ensure_dataset(self, spec: DatasetSpec) -> None:
        """Create the dataset, or check that the existing one fits; SchemaError says what does not."""
        import argilla as rg

        self.none_label = spec.none_label if spec.multi_label else None

        client = self._connect()
        if self.dataset_id is not None:  # a run that knows its dataset: by id, whatever it is called now
            self._dataset = None
            check_schema(self._get_dataset().settings, spec)
            self._add_missing_metadata(self._dataset)
            return
        if client.workspaces(spec.workspace) is None:
            raise ArgillaRefused(f"workspace {spec.workspace!r} does not exist in Argilla at {self.api_url}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            existing = client.datasets(spec.name, workspace=spec.workspace)
        if existing is not None:
            check_schema(existing.settings, spec, adopting=True)
            self._dataset = existing
            self.dataset_id = str(existing.id)
            self._add_missing_metadata(existing)
            return
        question = rg.MultiLabelQuestion if spec.multi_label else rg.LabelQuestion
        settings = rg.Settings(
            fields=[rg.TextField(TEXT_FIELD, title="Text", use_markdown=False)],
            questions=[question(LABEL_QUESTION, labels=spec.options, title="Labels" if spec.multi_label else "Label")],
            metadata=[rg.IntegerMetadataProperty(name, visible_for_annotators=True) for name in INTEGER_METADATA]
            + [rg.FloatMetadataProperty(name, visible_for_annotators=True) for name in FLOAT_METADATA],
            guidelines=spec.guidelines or None,
            distribution=rg.TaskDistribution(min_submitted=spec.min_submitted),
        )
        self._dataset = rg.Dataset(spec.name, workspace=spec.workspace, settings=settings, client=client).create()
        self.dataset_id = str(self._dataset.id)
        log.info("created Argilla dataset %r in workspace %r", spec.name, spec.workspace)

    def _add_missing_metadata(self, dataset) -> None:
        """Give a dataset created by an older version the metadata properties it lacks (e.g. ``relabel``):
        Argilla refuses records whose metadata has no property unless the dataset allows extra metadata."""
        present = {m.name for m in dataset.settings.metadata}
        wanted = [(name, "integer") for name in INTEGER_METADATA] + [(name, "float") for name in FLOAT_METADATA]
        http = self._connect().api.http_client
        for name, kind in wanted:
            if name in present:
                continue
            body = {"name": name, "title": name, "settings": {"type": kind}, "visible_for_annotators": True}
            http.post(f"/api/v1/datasets/{dataset.id}/metadata-properties", json=body).raise_for_status()
            log.info("added metadata property %r to dataset %r", name, dataset.name)

    # ---- records -------------------------------------------------------------------------------------
    @_translate
    def log_records(self, records: Sequence[OutRecord]) -> None:
        """Upsert records by their ids: logging the same batch twice changes nothing."""
        import argilla as rg

        if not records:
            return
        dataset = self._get_dataset()
        payload = []
        for item in records:
            metadata = {"batch_id": item.batch_id, "pool_index": item.pool_index, "round": item.round}
            if item.al_score is not None:
                metadata["al_score"] = float(item.al_score)
            if item.relabel:
                metadata["relabel"] = item.relabel
            suggestions = []
            if (suggested := self._suggestion(item)) is not None:
                value, score = suggested
                suggestions.append(rg.Suggestion(LABEL_QUESTION, value, score=score, agent=item.agent))
            payload.append(
                rg.Record(id=item.record_id, fields={TEXT_FIELD: item.text}, metadata=metadata, suggestions=suggestions)
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # re-logged records come back with their responses: user-id noise
            dataset.records.log(payload, user_id=self._me.id, batch_size=min(len(payload), 500))

    def _suggestion(self, item: OutRecord) -> tuple[str | list[str], float | list[float] | None] | None:
        """A record's suggestion in Argilla's terms: a label and its score, or a list of labels and a score for
        each (an empty set is suggested as the "none of these" option, or not at all without one)."""
        if item.suggestion is None:
            return None
        if isinstance(item.suggestion, str):
            return item.suggestion, item.suggestion_score
        scores = list(item.suggestion_score) if isinstance(item.suggestion_score, tuple) else None
        if not item.suggestion:
            return ([self.none_label], None) if self.none_label else None
        return list(item.suggestion), scores

    @_translate
    def read_batch(self, batch_id: int) -> list[RecordView]:
        """Every record of a batch with its status, submitted labels and whether someone discarded it."""
        dataset = self._get_dataset()
        scope = {"entity": "metadata", "metadata_property": "batch_id"}
        query = {"filters": {"and": [{"type": "range", "scope": scope, "ge": batch_id, "le": batch_id}]}}
        path = f"/api/v1/datasets/{dataset.id}/records/search"
        return [view for item in self._pages("POST", path, query) if (view := _view(item["record"], self.none_label))]

    @_translate
    def read_all(self) -> list[RecordView]:
        """Every record of the dataset with its responses, from Argilla's database (not its search index, which
        may lag or be rebuilding): the truth the daemon reconciles its journal against once per round."""
        dataset = self._get_dataset()
        items = self._pages("GET", f"/api/v1/datasets/{dataset.id}/records")
        return [view for item in items if (view := _view(item, self.none_label))]

    def _pages(self, method: str, path: str, body: dict | None = None) -> list[dict]:
        """All items of a paged records endpoint, with responses. Raw JSON: the SDK's record objects fail on a
        discard sent without values (``AttributeError``) and hide UI discards."""
        http = self._connect().api.http_client
        items: list[dict] = []
        page = 1000  # the server's maximum
        while True:
            params = {"include": "responses", "offset": len(items), "limit": page}
            response = http.request(method, path, params=params, json=body)
            response.raise_for_status()
            got = response.json().get("items", [])
            items.extend(got)
            if len(got) < page:
                return items

    @_translate
    def check_dataset(self, spec: DatasetSpec) -> None:
        """Fetch the dataset's settings afresh and check them (people may change them while the daemon runs)."""
        self._dataset = None
        self.none_label = spec.none_label if spec.multi_label else None
        check_schema(self._get_dataset().settings, spec)

    @_translate
    def set_guidelines(self, text: str) -> None:
        """Replace the dataset's guidelines (annotators see them beside every record)."""
        dataset = self._get_dataset()
        self._connect().api.http_client.patch(
            f"/api/v1/datasets/{dataset.id}", json={"guidelines": text}
        ).raise_for_status()

    @_translate
    def user_names(self) -> dict[str, str]:
        """User id → username of every user the key may list (for exports; annotators are stored by id)."""
        response = self._connect().api.http_client.get("/api/v1/users")
        response.raise_for_status()
        return {str(user["id"]): user["username"] for user in response.json().get("items", [])}

    @_translate
    def team(self) -> set[str]:
        """User ids of the workspace's members other than the daemon's own user: who may answer a record."""
        dataset = self._get_dataset()
        response = self._connect().api.http_client.get(f"/api/v1/workspaces/{dataset.workspace.id}/users")
        response.raise_for_status()
        return {str(user["id"]) for user in response.json().get("items", [])} - {str(self._me.id)}

    @_translate
    def register_webhook(self, url: str, events: Sequence[str], description: str) -> str:
        """Create a webhook to ``url`` for ``events`` (replacing one a previous run left at the same URL, whose
        secret is no longer known) and return its signing secret. Needs an owner's key."""
        http = self._connect().api.http_client
        self._remove_webhooks(url)
        response = http.post("/api/v1/webhooks", json={"url": url, "events": list(events), "description": description})
        response.raise_for_status()
        return response.json()["secret"]

    @_translate
    def remove_webhook(self, url: str) -> int:
        """Delete the webhooks to ``url``; how many there were."""
        return self._remove_webhooks(url)

    def _remove_webhooks(self, url: str) -> int:
        http = self._connect().api.http_client
        response = http.get("/api/v1/webhooks")
        response.raise_for_status()
        found = [hook["id"] for hook in response.json().get("items", []) if hook.get("url") == url]
        for hook_id in found:
            http.delete(f"/api/v1/webhooks/{hook_id}").raise_for_status()
        return len(found)

    @_translate
    def read_foreign(self) -> list[Foreign]:
        """Every record the daemon did not log (no ``pool_index`` metadata), with its text and submitted answers:
        what a warm start adopts from an existing dataset."""
        dataset = self._get_dataset()
        found = []
        for item in self._pages("GET", f"/api/v1/datasets/{dataset.id}/records"):
            if (item.get("metadata") or {}).get("pool_index") is not None:
                continue
            found.append(
                Foreign(
                    record_id=str(item.get("external_id") or item["id"]),
                    text=(item.get("fields") or {}).get(TEXT_FIELD),
                    submitted=_submitted(item, self.none_label),
                )
            )
        return found

    @_translate
    def max_batch_id(self) -> int | None:
        """The highest batch id present in the dataset (None when it has no batch yet)."""
        dataset = self._get_dataset()
        response = self._connect().api.http_client.post(
            f"/api/v1/datasets/{dataset.id}/records/search",
            params={"limit": 1},
            json={"sort": [{"scope": {"entity": "metadata", "metadata_property": "batch_id"}, "order": "desc"}]},
        )
        response.raise_for_status()
        items = response.json().get("items", [])
        if not items:
            return None
        value = (items[0]["record"].get("metadata") or {}).get("batch_id")
        return None if value is None else int(value)

    @_translate
    def batch_record_ids(self, batch_id: int) -> list[str]:
        """The ids of every record whose ``batch_id`` metadata is ``batch_id``, the daemon's or not (e.g. a
        record added by hand): what start-up names when the dataset holds batches the state does not know."""
        dataset = self._get_dataset()
        scope = {"entity": "metadata", "metadata_property": "batch_id"}
        query = {"filters": {"and": [{"type": "range", "scope": scope, "ge": batch_id, "le": batch_id}]}}
        items = self._pages("POST", f"/api/v1/datasets/{dataset.id}/records/search", query)
        return [str(item["record"].get("external_id") or item["record"]["id"]) for item in items]


def _view(item: dict, none_label: str | None = None) -> RecordView | None:
    """A record as the API returns it (with responses) → RecordView; None for records the daemon did not log.
    A multi-label answer becomes a sorted tuple of labels; ``none_label`` in it stands for no label."""
    metadata = item.get("metadata") or {}
    index = metadata.get("pool_index")
    if index is None:
        return None
    answers = item.get("responses") or []
    return RecordView(
        record_id=str(item.get("external_id") or item["id"]),
        pool_index=int(index),
        status=str(item.get("status")),
        submitted=_submitted(item, none_label),
        discarded=any(answer.get("status") == "discarded" for answer in answers),
        relabel=int(metadata.get("relabel") or 0),
        batch_id=None if metadata.get("batch_id") is None else int(metadata["batch_id"]),
        round=None if metadata.get("round") is None else int(metadata["round"]),
        text=(item.get("fields") or {}).get(TEXT_FIELD),
    )


def _submitted(item: dict, none_label: str | None) -> tuple[tuple[str, Answer], ...]:
    """A record's submitted answers, (user id, label or label set) in the order Argilla lists them."""
    return tuple(
        (str(answer["user_id"]), _answer(answer["values"][LABEL_QUESTION]["value"], none_label))
        for answer in item.get("responses") or []
        if answer.get("status") == "submitted" and LABEL_QUESTION in (answer.get("values") or {})
    )


def _answer(value, none_label: str | None) -> Answer:
    """A submitted value: a label, or a list of labels without the "none of these" option (alone: no label)."""
    if isinstance(value, list):
        return canonical(label for label in value if label != none_label)
    return str(value)


def check_schema(settings, spec: DatasetSpec, adopting: bool = False) -> None:
    """Refuse an existing dataset whose field, question or metadata do not fit the daemon. ``adopting``: a new run
    on a dataset it did not create (a warm start), which may lack the daemon's metadata (added, not refused)."""
    problems = []
    fields = {f.name: f for f in settings.fields}
    if TEXT_FIELD not in fields or type(fields[TEXT_FIELD]).__name__ != "TextField":
        problems.append(f"needs a text field named {TEXT_FIELD!r} (has fields {sorted(fields)})")
    questions = {q.name: q for q in settings.questions}
    question = questions.get(LABEL_QUESTION)
    kind = "MultiLabelQuestion" if spec.multi_label else "LabelQuestion"
    if question is None or type(question).__name__ != kind:
        which = "multi-label" if spec.multi_label else "single-label"
        problems.append(f"needs a {which} question named {LABEL_QUESTION!r} (has questions {sorted(questions)})")
    elif problem := label_problem(question.labels, spec):
        problems.append(problem)
    metadata = {m.name: type(m).__name__ for m in settings.metadata}
    for name in ("batch_id", "pool_index"):
        if name not in metadata and adopting:  # a dataset made by hand: the daemon adds what it lacks
            continue
        if metadata.get(name) != "IntegerMetadataProperty":
            problems.append(f"needs integer metadata {name!r}")
    if problems:
        raise incompatible(spec, problems)


def incompatible(spec: DatasetSpec, problems: list[str]) -> SchemaError:
    """The refusal for an existing dataset that does not fit ``spec``."""
    return SchemaError(
        f"existing Argilla dataset {spec.name!r} in workspace {spec.workspace!r} is not compatible: "
        + "; ".join(problems)
        + ". Use another AL_DATASET name, or delete the dataset."
    )


def label_problem(have: Sequence[str], spec: DatasetSpec) -> str | None:
    """What is wrong with a label question offering ``have`` (None: the daemon's labels)."""
    if sorted(have) == sorted(spec.options):
        return None
    return f"question {LABEL_QUESTION!r} has labels {sorted(have)}, the daemon expects {sorted(spec.options)}"
