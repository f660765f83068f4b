"""A simulated annotator: labels pending records through the same HTTP calls the Argilla UI makes.

It signs in with an *annotator's* API key, asks for its own pending queue
(``POST /api/v1/me/datasets/{id}/records/search``) and submits or discards each record
(``POST /api/v1/records/{id}/responses``), answering with the gold label of the pool file, optionally
noisy. The daemon cannot tell it from a person.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from pathlib import Path

import httpx

from daemon.answers import Answer, canonical, is_set
from daemon.errors import DataError, SimulationError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SimulationConfig:
    argilla_url: str
    api_key: str
    dataset: str
    workspace: str = "argilla"
    delay: float = 0.1  # seconds per record, like a (very fast) person
    discard_rate: float = 0.0
    noise_rate: float = 0.0
    poll_interval: float = 0.5
    seed: int = 0


@dataclasses.dataclass
class SimulationCounts:
    submitted: int = 0
    discarded: int = 0
    noisy: int = 0
    errors: int = 0


class SimulatedAnnotator:
    """Answers every record in its pending queue with ``gold[text]`` until stopped."""

    def __init__(
        self,
        config: SimulationConfig,
        gold_by_text: dict[str, Answer],
        labels: list[str],
        source: AnnotationSource | None = None,
        none_label: str | None = None,
    ) -> None:
        self.config = config
        self.none_label = none_label  # multi-label: the option that answers "none of these"
        self.gold = gold_by_text
        self.source = source  # several annotators' recorded labels: each answer takes the next one
        self.texts_answered: set[str] = (
            set()
        )  # texts this annotator answered: a relabel request of one is left to others
        self.labels = labels
        self.random = random.Random(config.seed)
        self.counts = SimulationCounts()
        self.stop_event = threading.Event()
        self.http = httpx.Client(base_url=config.argilla_url, headers={"X-Argilla-Api-Key": config.api_key}, timeout=30)
        self._dataset_id: str | None = None

    def dataset_id(self) -> str | None:
        if self._dataset_id is None:
            response = self.http.get("/api/v1/me/datasets")
            response.raise_for_status()
            workspaces = {w["id"]: w["name"] for w in self.http.get("/api/v1/me/workspaces").json()["items"]}
            for item in response.json()["items"]:
                if (
                    item["name"] == self.config.dataset
                    and workspaces.get(item["workspace_id"]) == self.config.workspace
                ):
                    self._dataset_id = item["id"]
        return self._dataset_id

    def pending(self) -> list[dict]:
        """This annotator's pending queue (records it has not answered), oldest batch first."""
        dataset_id = self.dataset_id()
        if dataset_id is None:
            return []
        body = {
            "filters": {
                "and": [
                    {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
                    {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
                ]
            },
            "sort": [{"scope": {"entity": "metadata", "metadata_property": "batch_id"}, "order": "asc"}],
        }
        response = self.http.post(f"/api/v1/me/datasets/{dataset_id}/records/search", params={"limit": 50}, json=body)
        response.raise_for_status()
        return [item["record"] for item in response.json()["items"]]

    def still_open(self, record: dict) -> bool:
        """Whether the record still wants answers (a colleague may have completed it since the queue was read);
        a person would see the next record instead."""
        response = self.http.get(f"/api/v1/records/{record['id']}")
        return response.status_code != 200 or response.json().get("status") != "completed"

    def answer(self, record: dict) -> None:
        text = record["fields"]["text"]
        if self.random.random() < self.config.discard_rate:
            body = {"status": "discarded", "values": {}}
            self.counts.discarded += 1
        else:
            label = self.source.take(text)[1] if self.source is not None else self.gold[text]
            if self.random.random() < self.config.noise_rate:
                label = self.noisy(label)
                self.counts.noisy += 1
            value = self.value(label)
            if value is None:  # a label set that is empty with no "none of these" option: a person would discard
                body = {"status": "discarded", "values": {}}
                self.counts.discarded += 1
            else:
                body = {"status": "submitted", "values": {"label": {"value": value}}}
                self.counts.submitted += 1
        response = self.http.post(f"/api/v1/records/{record['id']}/responses", json=body)
        self.texts_answered.add(text)
        if response.status_code != 201:
            self.counts.errors += 1
            log.warning("response for %s: HTTP %d %s", record["id"], response.status_code, response.text[:200])

    def noisy(self, label: Answer) -> Answer:
        """A careless answer: another label, or (label sets) one label ticked or unticked at random."""
        if not is_set(label):
            return self.random.choice([other for other in self.labels if other != label])
        flipped = self.random.choice(self.labels)
        return canonical(set(label) ^ {flipped})

    def value(self, label: Answer) -> str | list[str] | None:
        """What Argilla's question takes for ``label``: the label, or a list of labels (the "none of these" option
        for an empty set; None when there is none)."""
        if not is_set(label):
            return label
        if label:
            return list(label)
        return [self.none_label] if self.none_label else None

    def run(self, max_records: int | None = None) -> SimulationCounts:
        """Label until ``stop()`` (or ``max_records`` answers)."""
        while not self.stop_event.is_set():
            if max_records is not None and self.counts.submitted + self.counts.discarded >= max_records:
                return self.counts
            try:
                queue = self.pending()
            except httpx.HTTPError as exc:
                log.warning("simulated annotator: %s", exc)
                queue = []
            if self.source is not None:  # a team: each member starts somewhere else in the queue, as people do
                self.random.shuffle(queue)
            answered = 0
            for record in queue:
                if self.stop_event.is_set():
                    break
                if max_records is not None and self.counts.submitted + self.counts.discarded >= max_records:
                    return self.counts
                text = record["fields"]["text"]
                if text not in self.gold or (self.source is not None and text in self.texts_answered):
                    continue
                self.stop_event.wait(self.config.delay)
                try:
                    if self.source is not None and not self.still_open(record):
                        continue
                    self.answer(record)
                    answered += 1
                except httpx.HTTPError as exc:
                    self.counts.errors += 1
                    log.warning("simulated annotator: %s", exc)
            if not answered:
                self.stop_event.wait(self.config.poll_interval)
        return self.counts

    def stop(self) -> None:
        self.stop_event.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="simulated-annotator", daemon=True)
        thread.start()
        return thread


class AnnotationSource:
    """Recorded annotations per text, ``(annotator, label)`` pairs handed out one per request in a seeded random
    order (a fresh annotator's label each time, as cleanlab's ActiveLab example simulates); thread-safe."""

    def __init__(self, by_text: dict[str, list[tuple[str, str]]], seed: int = 0) -> None:
        rng = random.Random(seed)
        self._queues = {text: rng.sample(given, len(given)) for text, given in by_text.items() if given}
        self._taken: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = rng
        self.reused = 0  # requests answered after a text's recorded labels ran out (a recorded one again)

    def __contains__(self, text: str) -> bool:
        return text in self._queues

    def remaining(self, text: str) -> int:
        return len(self._queues.get(text, ())) - self._taken.get(text, 0)

    def take(self, text: str) -> tuple[str, str]:
        """The next recorded (annotator, label) for ``text``; once all were given, a random one of them again."""
        with self._lock:
            queue = self._queues[text]
            taken = self._taken.get(text, 0)
            self._taken[text] = taken + 1
            if taken < len(queue):
                return queue[taken]
            self.reused += 1
            return self._rng.choice(queue)


def load_annotations(path: Path, text_column: str = "text", column: str = "annotations") -> dict:
    """``{text: [(annotator, label), ...]}`` from a JSONL file whose rows list their annotations as
    ``[{"annotator": ..., "label": ...}, ...]`` (the politeness data's layout)."""
    found: dict[str, list[tuple[str, str]]] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {number} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                raise DataError(f"{path}: row {number} has no text in {text_column!r}")
            given = row.get(column)
            if not isinstance(given, list) or not all(isinstance(a, dict) and "label" in a for a in given):
                raise DataError(f"{path}: row {number} has no {column!r} list of {{'label': ...}} objects")
            pairs = [(str(a.get("annotator", f"annotator-{k}")), str(a["label"])) for k, a in enumerate(given)]
            found.setdefault(row[text_column], []).extend(pairs)
    return found


def team(argilla_url: str, owner_key: str, workspace: str, size: int, prefix: str = "sim-annotator") -> list[str]:
    """API keys of ``size`` annotator users ``<prefix>-1..N`` in ``workspace``, created (with password
    ``12345678``, so a person can sign in as them too) when missing. Needs an owner's key.

    Simulators started together against one server all find a user missing and all but
    one are refused making it (409, or a 500 when the inserts meet in Argilla's database): the whole lookup is
    tried again, on a new connection, and finds what the others made."""
    for attempt in range(3):
        try:
            return _team(argilla_url, owner_key, workspace, size, prefix)
        except httpx.HTTPError:
            time.sleep(0.5 * (attempt + 1))
    return _team(argilla_url, owner_key, workspace, size, prefix)


def _team(argilla_url: str, owner_key: str, workspace: str, size: int, prefix: str) -> list[str]:
    with httpx.Client(base_url=argilla_url, headers={"X-Argilla-Api-Key": owner_key}, timeout=30) as http:
        spaces = {w["name"]: w["id"] for w in http.get("/api/v1/me/workspaces").raise_for_status().json()["items"]}
        if workspace not in spaces:
            raise SimulationError(f"workspace {workspace!r} does not exist in Argilla at {argilla_url}")
        users = {u["username"]: u for u in http.get("/api/v1/users").raise_for_status().json()["items"]}
        members = http.get(f"/api/v1/workspaces/{spaces[workspace]}/users").raise_for_status().json()["items"]
        inside = {u["username"] for u in members}
        keys = []
        for number in range(1, size + 1):
            name = f"{prefix}-{number}"
            if name not in users:
                body = {"first_name": name, "username": name, "password": "12345678", "role": "annotator"}
                users[name] = http.post("/api/v1/users", json=body).raise_for_status().json()
            if name not in inside:
                body = {"user_id": users[name]["id"]}
                http.post(f"/api/v1/workspaces/{spaces[workspace]}/users", json=body).raise_for_status()
            keys.append(users[name]["api_key"])
        return keys


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
