"""A simulated annotator: labels pending records through the same HTTP calls the Argilla UI makes.

It signs in with an *annotator's* API key, asks for its own pending queue
(``POST /api/v1/me/datasets/{id}/records/search``) and submits or discards each record
(``POST /api/v1/records/{id}/responses``), answering with the gold label of the pool file, optionally
noisy. The daemon cannot tell it from a person.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time

import httpx

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

    def __init__(self, config: SimulationConfig, gold_by_text: dict[str, str], labels: list[str]) -> None:
        self.config = config
        self.gold = gold_by_text
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

    def answer(self, record: dict) -> None:
        text = record["fields"]["text"]
        if self.random.random() < self.config.discard_rate:
            body = {"status": "discarded", "values": {}}
            self.counts.discarded += 1
        else:
            label = self.gold[text]
            if self.random.random() < self.config.noise_rate:
                label = self.random.choice([other for other in self.labels if other != label])
                self.counts.noisy += 1
            body = {"status": "submitted", "values": {"label": {"value": label}}}
            self.counts.submitted += 1
        response = self.http.post(f"/api/v1/records/{record['id']}/responses", json=body)
        if response.status_code != 201:
            self.counts.errors += 1
            log.warning("response for %s: HTTP %d %s", record["id"], response.status_code, response.text[:200])

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
            for record in queue:
                if self.stop_event.is_set():
                    break
                if max_records is not None and self.counts.submitted + self.counts.discarded >= max_records:
                    return self.counts
                if record["fields"]["text"] not in self.gold:
                    continue
                self.stop_event.wait(self.config.delay)
                try:
                    self.answer(record)
                except httpx.HTTPError as exc:
                    self.counts.errors += 1
                    log.warning("simulated annotator: %s", exc)
            if not queue:
                self.stop_event.wait(self.config.poll_interval)
        return self.counts

    def stop(self) -> None:
        self.stop_event.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="simulated-annotator", daemon=True)
        thread.start()
        return thread


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
