"""The persisted run: a journal of batches and rounds, written atomically after every step.

A batch is journaled (its pool indices chosen) *before* it is logged to Argilla, so a crash between the
query and the log re-logs the same indices instead of querying afresh. Labels read from Argilla are
journaled before training, so a restart trains on exactly the same labels.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from daemon.answers import Answer, consensus
from daemon.errors import StateError
from daemon.files import atomic_write, make_private_dir, remove_leftovers
from daemon.steps import reached
from daemon.stopping import Signal

STATE_FILE = "state.json"
STATE_VERSION = 1
JOURNALED = "(journaled)"  # the annotator of a vote that is only a batch's label (states from before votes were kept)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Batch(BaseModel):
    """One batch of records in front of annotators."""

    batch_id: int
    round: int  # N+1 when chosen after round N (0 = the random first batch); Argilla's `round` metadata
    pool_indices: list[int]
    record_ids: list[str]
    scores: list[float | None] = Field(default_factory=list)  # the query strategy's score per record
    suggestions: list[Answer | None] = Field(default_factory=list)  # the model's predicted label (set) per record
    confidences: list[float | tuple[float, ...] | None] = Field(default_factory=list)  # its probability (each's)
    logged: bool = False  # all records are in Argilla
    complete: bool = False  # every record is completed or discarded; labels below are final for this batch
    labels: dict[int, Answer] = Field(default_factory=dict)  # pool index -> label (set) used for training
    annotators: dict[int, list[str]] = Field(default_factory=dict)  # pool index -> user ids that submitted
    discarded: list[int] = Field(default_factory=list)
    created_at: str = Field(default_factory=now)
    logged_at: str | None = None
    handover: float | None = None  # seconds from the batch before seen complete to this one logged
    completed_at: str | None = None
    # a stuck batch closed early (AL_STUCK_ACTION): records still pending then
    open: list[int] = Field(default_factory=list)  # proceed: left in Argilla; a late label joins training
    moved: list[int] = Field(default_factory=list)  # requeue: moved into the next batch
    carried: list[int] = Field(default_factory=list)  # the records this batch took over from the previous one
    # ActiveLab: labelled texts asked once more, each as its own linked record (metadata pool_index + relabel)
    relabels: list[int] = Field(default_factory=list)
    relabel_ids: list[str] = Field(default_factory=list)
    relabel_numbers: list[int] = Field(default_factory=list)  # k: the text's k-th relabel request
    relabel_scores: list[float | None] = Field(default_factory=list)  # their ActiveLab scores
    probes: list[int] = Field(default_factory=list)  # the model ladder's probes among the batch's texts (no suggestion)
    # every submitted answer of the batch's records: record id -> [[annotator id, label], ...] in submit order
    votes: dict[str, list[list[Answer]]] = Field(default_factory=dict)

    def record_index(self) -> dict[str, int]:
        """Record id -> pool index, for the batch's own records and its relabel requests."""
        return dict(zip(self.record_ids, self.pool_indices, strict=True)) | dict(
            zip(self.relabel_ids, self.relabels, strict=True)
        )

    def fresh_indices(self) -> list[int]:
        """Pool indices first asked for in this batch (not carried over from a stuck one)."""
        carried = set(self.carried)
        return [i for i in self.pool_indices if i not in carried]


class Change(BaseModel):
    """A change to a label after its batch was closed: made by a person in Argilla, or a late answer."""

    round: int  # the first round that trains with the change
    batch_id: int
    pool_index: int
    kind: str  # late-label | late-discard | relabelled | withdrawn | restored | deleted
    old: Answer | None = None  # the label before (None: it was not trained on)
    new: Answer | None = None  # the label after (None: no longer trained on)
    at: str = Field(default_factory=now)


SEED_FILE = "seed-file"  # a seed label's source: AL_SEED_FILE
ADOPTED = "argilla"  # ... or an answer found in the dataset that the daemon did not ask for (adopted at the start)


class Seed(BaseModel):
    """Labels the run started from (a warm start), journaled once when the run begins and never read again: from
    ``AL_SEED_FILE`` and from answered records of an existing dataset that the daemon did not create. A seed text
    that is in the pool keeps its pool index (never logged, never queried); one the pool lacks is a training-only
    row, index ``pool size + k`` for its ``extra_texts[k]``."""

    labels: dict[int, Answer] = Field(default_factory=dict)  # pool (or training-only) index -> label
    sources: dict[int, str] = Field(default_factory=dict)  # index -> SEED_FILE | ADOPTED
    extra_texts: list[str] = Field(default_factory=list)  # training-only texts, in index order after the pool
    file: str | None = None  # AL_SEED_FILE as it was when the run began
    file_fingerprint: str | None = None  # its texts and labels (a changed file is refused on restart)
    adopted_records: list[str] = Field(default_factory=list)  # ids of the Argilla records adopted
    votes: dict[int, list[list[Answer]]] = Field(default_factory=dict)  # adopted: index -> [[annotator, label], ...]


class RoundMetrics(BaseModel):
    """What one training round measured."""

    round: int
    labels: int
    accuracy: float | None = None  # multi-label: subset accuracy (the whole label set right)
    macro_f1: float | None = None
    micro_f1: float | None = None  # multi-label only, as the Hamming loss (share of wrong label decisions)
    hamming_loss: float | None = None
    signals: dict[str, Signal] = Field(default_factory=dict)  # every stopping criterion's reading
    projected_stop_round: int | None = None  # where KappaAverage is projected to fire
    seconds: dict[str, float] = Field(default_factory=dict)  # per phase: read, train, evaluate, query, log
    finished_at: str = Field(default_factory=now)

    @property
    def kappa(self) -> float | None:
        signal = self.signals.get("kappa_average")
        return signal.value if signal else None


class LadderVerdict(BaseModel):
    """One comparison of the model ladder (``daemon.ladder``): the model choosing the batches against the one that
    may take over. ``cv``: both cross-validated on the labels in hand (``folds``), the accuracies theirs.
    ``probes``: both trained on ``labels`` labels, then scored on ``probes`` texts where they disagreed, drawn at
    random among those and labelled afterwards; the accuracies are on those texts, ``share`` is the disagreements'
    share of the unlabelled pool; the labels in hand (``labelled_share`` of the pool) are cross-validated
    (``cv_current``, ``cv_candidate``), and ``estimated_lead`` is the lead on the whole pool from both parts."""

    round: int
    labels: int
    current: str
    candidate: str
    folds: int
    current_accuracy: float
    candidate_accuracy: float
    standard_error: float  # of the lead
    margin: float
    switch: bool
    seconds: float
    reason: str = ""  # the verdict in one line (daemon.ladder.reason)
    at: str = Field(default_factory=now)
    method: str = "cv"  # AL_LADDER_COMPARE (verdicts journaled before it existed were cross-validated)
    probes: int = 0  # probes: how many were labelled (discarded ones do not vote)
    share: float = 1.0  # probes: the disagreements' share of the unlabelled pool when they were drawn
    labelled_share: float = 0.0  # probes: the labels in hand's share of the pool (labelled + unlabelled)
    cv_current: float | None = None  # probes: cross-validated accuracy on the labels in hand
    cv_candidate: float | None = None
    estimated_lead: float | None = (
        None  # probes: the candidate's lead on the whole pool (daemon.ladder.stratified_lead)
    )

    @property
    def lead(self) -> float:
        """The candidate's lead in accuracy (probes: on the whole pool, estimated)."""
        if self.estimated_lead is not None:
            return self.estimated_lead
        return self.share * (self.candidate_accuracy - self.current_accuracy)


class LadderProbes(BaseModel):
    """A model ladder's comparison waiting for its labels (AL_LADDER_COMPARE=probes): both models were trained on
    ``labels`` labels, predicted the unlabelled pool, and ``indices`` were drawn at random among the texts on which
    they disagree; those go into the next batches (before the query's picks, with no model suggestion) and the
    verdict is made once every one is in a complete batch."""

    round: int
    labels: int
    current: str  # the model kind choosing the batches when they were drawn
    candidate: str  # the model kind that may take over (or, after a take-over, AL_MODEL's: the way back)
    current_name: str
    candidate_name: str
    share: float  # the disagreements' share of the unlabelled pool
    disagreements: int
    indices: list[int]
    current_predicted: list[int]
    candidate_predicted: list[int]
    seconds: float  # training both, predicting the pool and cross-validating both
    # the labels in hand, the pool's other part: their share of it, and both models cross-validated on them
    labelled_share: float = 0.0
    folds: int = 0
    cv_current: float = 0.0
    cv_candidate: float = 0.0
    cv_error: float = 0.0  # the standard error of their difference (paired, per label)
    at: str = Field(default_factory=now)


class RunState(BaseModel):
    """Everything needed to resume: identity of the run, the batches, and the metric history."""

    version: int = STATE_VERSION
    dataset: str
    workspace: str
    pool_fingerprint: str
    labels: list[str]
    multi_label: bool = False  # answers are label sets (daemon.answers)
    batch_size: int
    batches: list[Batch] = Field(default_factory=list)
    rounds: list[RoundMetrics] = Field(default_factory=list)
    stopped: str | None = None
    stopped_at: str | None = None
    exported_at: str | None = None
    started_at: str = Field(default_factory=now)
    dataset_id: str | None = None  # Argilla's id of the dataset: followed across renames
    former_names: list[str] = Field(default_factory=list)  # names it had before (AL_DATASET may still say one)

    def renamed(self, name: str) -> bool:
        """Record the dataset's current name in Argilla; True when it changed."""
        if name == self.dataset:
            return False
        self.former_names.append(self.dataset)
        self.dataset = name
        return True

    def check_dataset_name(self, configured: str, current: str, path: Path) -> None:
        """AL_DATASET (``configured``) may name the run's dataset as Argilla calls it now (``current``) or as it
        was called before; StateError otherwise (the state at ``path`` is another run's)."""
        if configured not in (self.dataset, current, *self.former_names):
            raise StateError(
                f"{path} belongs to another run (different dataset: state has dataset {self.dataset!r}, called "
                f"{current!r} in Argilla now; AL_DATASET is {configured!r}); use another AL_STATE_DIR or restore "
                "the original settings"
            )

    changes: list[Change] = Field(default_factory=list)
    # AL_TRAINING=ahead: the next batch, chosen while annotators label the current one; logged when it completes
    prepared: Batch | None = None
    # AL_TRAINING=ahead: a criterion fired while a batch was already out; the run stops once it is answered
    stop_pending: str | None = None
    # several annotators: the last round's consensus (method; crowdlab's labels and annotator quality)
    consensus: dict = Field(default_factory=dict)
    seed: Seed | None = None  # a warm start's labels (trained on from round 0 on, before batch 0 is chosen)
    # the model ladder (AL_LADDER): its comparisons, and the model that took over the batches (None: AL_MODEL's)
    ladder: list[LadderVerdict] = Field(default_factory=list)
    model_in_use: str | None = None
    ladder_probes: LadderProbes | None = None  # a comparison waiting for its probes' labels

    @property
    def current(self) -> Batch | None:
        return self.batches[-1] if self.batches else None

    @property
    def rounds_trained(self) -> int:
        """How many rounds trained a model so far (the status's ``round``)."""
        return len(self.rounds)

    def training_labels(self) -> dict[int, Answer]:
        """The label of every labelled text of the complete batches (each pool index appears in exactly one
        batch): the majority of its votes once it has relabel answers, else the label its batch closed with."""
        merged = self.training_labels_closed()
        relabelled = {i for batch in self.batches if batch.complete for i in batch.relabels}
        if relabelled & merged.keys():
            votes = self.votes()
            for index in relabelled & merged.keys():
                if len(votes.get(index, ())) > 1:
                    merged[index] = consensus([label for _, label in votes[index]])
        return merged

    def consensus_labels(self) -> dict[int, Answer]:
        """The labels the last model trained on: CROWDLAB's where the last round used it, else the majority."""
        labels = self.training_labels()
        if self.consensus.get("method") == "crowdlab":
            chosen = {int(i): label for i, label in self.consensus.get("labels", {}).items()}
            labels.update({i: label for i, label in chosen.items() if i in labels})
        return labels

    def votes(self) -> dict[int, list[tuple[str, Answer]]]:
        """Every labelled text's votes, ``[(annotator, label), ...]`` across its record and relabel records in the
        order they were asked; one vote per annotator and text (an annotator who answered twice: the later).
        A text journaled before votes were kept counts its batch's label as one vote."""
        labelled = self.training_labels_closed()
        found: dict[int, list[tuple[str, Answer]]] = {}
        for batch in self.batches:
            if not batch.complete:
                continue
            position = batch.record_index()
            for rid, given in batch.votes.items():
                index = position.get(rid)
                if index is None or index not in labelled:
                    continue
                kept = found.setdefault(index, [])
                for who, label in given:
                    kept[:] = [vote for vote in kept if vote[0] != who]
                    kept.append((who, label))
        for index, given in (self.seed.votes if self.seed else {}).items():
            found.setdefault(index, [(who, label) for who, label in given])
        for index, label in labelled.items():
            if not found.get(index):
                found[index] = [(JOURNALED, label)]
        return found

    def training_labels_closed(self) -> dict[int, Answer]:
        """The seed labels and the labels the batches closed with (texts still trained on), before relabel votes
        are counted."""
        merged: dict[int, Answer] = dict(self.seed.labels) if self.seed else {}
        for batch in self.batches:
            if batch.complete:
                merged.update(batch.labels)
        return merged

    def relabel_requests(self) -> Counter[int]:
        """Pool index -> how many relabel records were journaled for the text so far."""
        return Counter(i for batch in self.batches for i in batch.relabels)

    def discarded(self) -> set[int]:
        return {i for batch in self.batches if batch.complete for i in batch.discarded}

    def used_indices(self) -> set[int]:
        """Pool items already asked for or labelled before the run (a seed): never put in a batch again."""
        return {i for batch in self.batches for i in batch.pool_indices} | set(self.seed.labels if self.seed else ())

    def reserved_indices(self) -> set[int]:
        """Pool items no query may pick: every batch's, and the batch prepared ahead."""
        return self.used_indices() | set(self.prepared.pool_indices if self.prepared else ())

    def open_indices(self) -> set[int]:
        """Records of batches closed early that nobody has answered yet (neither labelled nor queried again)."""
        return {i for batch in self.batches if batch.complete for i in batch.open}

    def not_queryable(self) -> set[int]:
        """Pool items the query must skip besides the labelled: discarded, left open, or moved to the next batch."""
        moved = {i for batch in self.batches for i in batch.moved}
        return self.discarded() | self.open_indices() | moved


def check_same_run(
    state: RunState, settings, fingerprint: str, labels: list[str], path: Path, multi_label: bool = False
) -> None:
    """Refuse a state of another run (dataset, workspace, pool file, labels or task differ): a local check, done
    before Argilla is asked. With the dataset's id known, its name is checked later against Argilla (it may have
    been renamed there)."""
    dataset = state.dataset if state.dataset_id else settings.dataset
    mine = (dataset, settings.workspace, fingerprint, labels, multi_label)
    theirs = (state.dataset, state.workspace, state.pool_fingerprint, state.labels, state.multi_label)
    if mine != theirs:
        names = ("dataset", "workspace", "pool file", "labels", "task (single- or multi-label)")
        what = [n for n, a, b in zip(names, mine, theirs, strict=True) if a != b]
        raise StateError(
            f"{path} belongs to another run (different {', '.join(what)}: state has dataset "
            f"{state.dataset!r} in {state.workspace!r}); use another AL_STATE_DIR or restore the original settings"
        )


LOCK_FILE = "daemon.lock"
LEGACY_LEFTOVERS = (f".{STATE_FILE}.*", ".learning-curve.png.*", "cache/*.tmp.npy")


def acquire_lock(state_dir: Path) -> tuple[object, str]:
    """One daemon per state dir: an exclusive POSIX lock on ``daemon.lock``, held while the process lives.

    Returns the open file (keep it) and who holds the lock (also written into the file). A second process gets a
    StateError naming the holder. POSIX locks vanish when the holder closes *any* descriptor of the file, so
    the holder must never open it again (hence no reader function here).
    """
    state_dir = Path(state_dir)
    make_private_dir(state_dir)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    handle = os.fdopen(fd, "r+")  # held for the life of the daemon
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StateError(
            f"another al-daemon is already running on {state_dir} ({holder}); one daemon per dataset — stop it "
            "first, or give this one its own AL_STATE_DIR and AL_DATASET"
        ) from None
    holder = f"pid {os.getpid()} on {socket.gethostname()} since {now()}"
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(holder)
        handle.flush()
    except OSError:  # a full disk: the lock holds all the same, only a second daemon's message names no holder
        pass
    return handle, holder


class StateStore:
    """Reads and atomically writes ``state.json`` (mode 0600) and the round's pool predictions.

    A save that fails (a full disk, a file-size limit) raises DiskError and leaves the last good journal in place;
    ``unsaved`` then stays True until a later save succeeds, and nothing may be sent to Argilla meanwhile."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE
        self.saves = 0  # a revision number of the journal: views derived from the state are cached on it
        self.unsaved = False  # the state in memory is ahead of the journal on disk (a save failed)

    def remove_partial_writes(self) -> list[Path]:
        """Delete what interrupted writes left in the state dir (temporary files, half-built folders); the files
        themselves are intact. Only the lock holder may call this: another process's write looks the same."""
        removed = remove_leftovers(self.dir)
        for pattern in LEGACY_LEFTOVERS:  # named differently by al-daemon 0.1
            for path in self.dir.glob(pattern):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def load(self) -> RunState | None:
        if not self.path.exists():
            return None
        raw = self.path.read_bytes()
        try:
            return RunState.model_validate_json(raw)
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0]
            if _cut_short(exc):
                raise StateError(
                    f"{self.path}: the journal is cut short ({len(raw):,} bytes; a full disk or a file-size limit "
                    "under al-daemon 0.1, which did not check its writes). Recover the run from Argilla: "
                    "`al-daemon recover` (same settings as `run`) rebuilds the journal from the dataset's records "
                    "and keeps this file beside it"
                ) from None
            raise StateError(
                f"{self.path}: unreadable state ({first}). Move it away to start over (nothing in Argilla is lost), "
                "or rebuild it from the dataset with `al-daemon recover`"
            ) from None

    def save(self, state: RunState) -> None:
        """Journal ``state``; DiskError when it cannot be written (the journal on disk is then the last good one)."""
        self.unsaved = True
        data = state.model_dump_json(indent=1).encode()
        reached("saving-state", path=self.path, data=data)
        self._atomic_write(self.path, data)
        self.unsaved = False
        self.saves += 1

    def save_predictions(self, round_number: int, predictions: np.ndarray) -> None:
        """Pool predictions of a round: KappaAverage compares consecutive rounds, across restarts too."""
        target = self.dir / f"predictions-{round_number}.npy"
        atomic_write(target, lambda handle: np.save(handle, predictions), what="the pool predictions")
        for old in self.dir.glob("predictions-*.npy"):
            if int(old.stem.split("-")[1]) < round_number - 1:
                old.unlink(missing_ok=True)

    def load_predictions(self, round_number: int) -> np.ndarray | None:
        path = self.dir / f"predictions-{round_number}.npy"
        return np.load(path) if path.exists() else None

    def previous_predictions(self, rounds: list[RoundMetrics], round_number: int) -> np.ndarray | None:
        """The pool predictions of the latest round before ``round_number`` that saved any."""
        for metrics in reversed(rounds):
            if metrics.round < round_number:
                found = self.load_predictions(metrics.round)
                if found is not None:
                    return found
        return None

    def _atomic_write(self, target: Path, data: bytes) -> None:
        atomic_write(target, data, what="state")


def _cut_short(exc: Exception) -> bool:
    """True when the JSON ends before it is complete (what a short write leaves), not when it is malformed."""
    if isinstance(exc, ValidationError):
        return any(error["type"] == "json_invalid" and "EOF" in error.get("msg", "") for error in exc.errors())
    return False
