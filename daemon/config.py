"""Settings: the one place the environment, `.env` and command-line flags are read.

Every setting is an environment variable prefixed ``AL_`` (``AL_BATCH_SIZE=20``), a line in ``.env``, or a
flag of ``al-daemon run`` (``--batch-size 20``); flags win over the environment, which wins over ``.env``.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ModelKind(StrEnum):
    """Which classifier the learner trains."""

    embeddings = "embeddings"  # frozen sentence embeddings + logistic regression
    transformer = "transformer"  # fine-tune a local Hugging Face model directory
    tfidf = "tfidf"  # TF-IDF + logistic regression, no torch needed at run time
    setfit = "setfit"  # SetFit: contrastive fine-tuning of the sentence encoder + logistic-regression head
    hybrid = "hybrid"  # frozen sentence embeddings joined with TF-IDF word n-grams + logistic regression (default)


class EncoderName(StrEnum):
    """How the sentence encoder embeds the pool (daemon/encoders.py)."""

    auto = "auto"  # onnx-int8 for large pools (daemon.encoders.ONNX_FROM_TEXTS texts or more), torch below
    torch = "torch"  # the model directory through PyTorch
    onnx_int8 = "onnx-int8"  # an int8 ONNX Runtime copy made once in the cache folder: 2-3.7x faster on CPU


FINE_TUNED = (ModelKind.transformer, ModelKind.setfit)  # models that fine-tune a network each round


class Ladder(StrEnum):
    """AL_LADDER's values besides a model kind."""

    auto = "auto"  # the fine-tuned transformer where a ladder can run (see auto_ladder), off elsewhere
    off = "off"


class LadderCompare(StrEnum):
    """AL_LADDER_COMPARE: how the model ladder tells which of two models is better."""

    probes = "probes"  # labels where the two disagree, drawn at random among those (bench/ladder_probes.py)
    cv = "cv"  # cross-validation on the labels in hand: no label spent, but it favours the newcomer (README)


AUTO_LADDER = ModelKind.transformer  # AL_LADDER=auto's model (bench/ladder_default.py); AL_LADDER is off by default


class QueryStrategyName(StrEnum):
    breaking_ties = "breaking_ties"
    least_confidence = "least_confidence"
    prediction_entropy = "prediction_entropy"
    random = "random"
    embedding_kmeans = "embedding_kmeans"  # diversity: the pool item nearest each of k-means' centres
    greedy_coreset = "greedy_coreset"  # diversity: farthest from everything labelled (Sener & Savarese)
    bald = "bald"  # Bayesian disagreement over Monte-Carlo dropout passes (transformer and setfit models)
    cvirs = "cvirs"  # multi-label: category vector inconsistency and ranking of scores (Reyes et al. 2018)


class ColdStart(StrEnum):
    """How the first batch is drawn, before any label exists."""

    random = "random"  # small-text's random_initialization
    kmeans = "kmeans"  # the pool item nearest each k-means centre of the embeddings: a diverse first batch


class Criterion(StrEnum):
    """small-text stopping criteria the daemon computes every round; any of them may be chosen to stop it."""

    kappa_average = "kappa_average"  # agreement of consecutive rounds' pool predictions (Bloodgood & Vijay-Shanker)
    delta_f_score = "delta_f_score"  # predicted change of F-score (Altschuler & Bloodgood; one-vs-rest if >2 classes)
    classification_change = "classification_change"  # share of pool predictions that changed (Zhu et al.)
    overall_uncertainty = "overall_uncertainty"  # mean normalised entropy on the unlabelled pool (Zhu et al.)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class StuckAction(StrEnum):
    wait = "wait"  # keep waiting (the warning on status is all)
    proceed = "proceed"  # train on the labels in hand and log the next batch; late labels join later rounds
    requeue = "requeue"  # train on the labels in hand; the unfinished records move into the next batch


class Training(StrEnum):
    """When the model trains relative to the batch annotators wait for."""

    auto = "auto"  # ahead for the fine-tuned models (transformer, setfit: slow to train), inline for the others
    inline = "inline"  # train, then query: the freshest model picks every batch; annotators wait for training
    ahead = "ahead"  # train on a background thread; a completed batch is answered at once with a batch prepared
    # ahead, or one chosen by the model in hand while the next model is still training


class ConsensusMethod(StrEnum):
    """How several annotators' labels for one text become the label the model trains on."""

    majority = "majority"  # majority vote; a tie goes to the label submitted first
    crowdlab = "crowdlab"  # cleanlab's CROWDLAB: votes weighted by estimated annotator quality and the model


class Task(StrEnum):
    """Single-label (one label per text) or multi-label (a set of labels per text) classification."""

    auto = "auto"  # multi when the pool's or the test set's label column holds lists, else single
    single = "single"
    multi = "multi"


class StopMode(StrEnum):
    any = "any"  # stop when one chosen criterion fires
    all = "all"  # stop when every chosen criterion fires in the same round


DAY = 86_400.0  # upper bound of the time settings: a larger value is a typo, and timers overflow near 1e12 s
YEAR = 365 * DAY
NAME_MAX = 200  # Argilla 2.x: dataset names (and label values) of 1-200 characters


MAX_EPOCHS = 30  # AL_TRANSFORMER_MIN_STEPS never asks for more epochs than this


class Settings(BaseSettings):
    """Everything the daemon can be told. See `.env.example` for one line per setting."""

    model_config = SettingsConfigDict(
        env_prefix="AL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="al-daemon run",
        allow_inf_nan=False,  # AL_POLL_INTERVAL=inf is a typo, not a setting: refused with the others
    )

    # Argilla
    argilla_url: str = Field("http://127.0.0.1:6900", description="Argilla server URL")
    argilla_api_key: SecretStr = Field(SecretStr("argilla.apikey"), description="API key of an owner/admin user")
    workspace: str = Field("argilla", description="Argilla workspace of the dataset")
    dataset: str = Field("al-daemon", description="Argilla dataset name (created if missing)")
    annotators_per_record: int = Field(
        1, ge=1, description="submitted responses that complete a record (Argilla's min_submitted)"
    )

    # data
    pool_file: Path = Field(
        Path("data/trec6/train.jsonl"), description="unlabelled pool: JSONL/CSV/Parquet/datasets dir"
    )
    test_file: Path | None = Field(Path("data/trec6/test.jsonl"), description="labelled test set (optional)")
    seed_file: Path | None = Field(
        None,
        description="warm start: texts labelled before the run (the pool's formats and columns), trained on before "
        "batch 0 is chosen; read once, when the run begins",
    )
    text_column: str = Field("text", description="column holding the text")
    label_column: str = Field("label", description="column holding gold labels (test set; pool for simulation)")
    id_column: str | None = Field("id", description="optional column of unique row ids")
    labels: list[str] | None = Field(None, description="label set; derived from the data when unset")
    task: Task = Field(
        Task.auto,
        description="auto | single | multi: one label per text, or a set of labels (an Argilla multi-label "
        "question); auto: multi when the label column holds lists",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="multi-label: a label is predicted (and suggested) above this probability"
    )
    none_label: str | None = Field(
        None,
        description="multi-label: an extra option meaning 'none of these labels' (ticked alone: the text has no "
        "label); unset: every text has at least one label",
    )
    max_text_chars: int = Field(100_000, ge=1, description="refuse pool/test texts longer than this")

    # active learning
    batch_size: int = Field(20, ge=1, description="records per batch")
    stuck_after: float | None = Field(
        3600.0,
        gt=0,
        le=YEAR,
        description="seconds after which a batch with some but not all answers counts as stuck",
    )
    stuck_action: StuckAction = Field(StuckAction.wait, description="wait | proceed | requeue: what a stuck batch gets")
    features_wait: float = Field(
        30.0,
        ge=0,
        le=DAY,
        description="seconds a complete batch waits for the model's features (built after batch 0) before the next "
        "batch is drawn at random",
    )
    model: ModelKind = Field(ModelKind.hybrid, description="hybrid | embeddings | transformer | tfidf | setfit")
    model_path: Path | None = Field(None, description="local HF model dir; default: the bundled all-MiniLM-L6-v2")
    ladder: ModelKind | Ladder | None = Field(
        Ladder.off,
        description="model ladder: a second model compared with the one choosing the batches once AL_LADDER_AFTER "
        "labels exist (AL_LADDER_COMPARE), in the background; it takes over when it is better. off (the default: "
        "with cv the ladder cost accuracy on TREC-6 and SUBJ; with probes, on one seed, nowhere; more seeds first: "
        "README) | auto: transformer in a "
        "single-label run of a frozen AL_MODEL without ActiveLab, CROWDLAB or AL_TRAINING=inline, off elsewhere "
        "| a model (transformer, setfit, ...)",
    )
    ladder_after: int = Field(
        500, ge=4, description="labels in hand at the ladder's first comparison; again each time they grew 1.5-fold"
    )
    ladder_compare: LadderCompare = Field(
        LadderCompare.probes,
        description="how the ladder compares: probes (AL_LADDER_PROBES texts on which the two models disagree, drawn "
        "at random among those, go into the next batches; once they are labelled, their verdict on the unlabelled "
        "pool and cross-validation on the labels in hand, weighed by their shares of the pool) | cv "
        "(cross-validation alone: no labels spent, but it favours the newcomer)",
    )
    ladder_probes: int = Field(40, ge=4, description="probes: texts labelled for one comparison")
    ladder_folds: int = Field(3, ge=2, le=10, description="folds of the ladder's cross-validation")
    encoder: EncoderName = Field(
        EncoderName.auto,
        description="auto | torch | onnx-int8: how sentence embeddings are computed (auto: onnx-int8 for pools of "
        "20,000 texts or more)",
    )
    query_strategy: QueryStrategyName = Field(
        QueryStrategyName.breaking_ties,
        description="breaking_ties | least_confidence | prediction_entropy | random | embedding_kmeans | "
        "greedy_coreset | bald (transformer, setfit) | cvirs (multi-label); unset in a multi-label run: random",
    )
    training: Training = Field(
        Training.auto,
        description="auto | inline | ahead: train before logging the next batch, or train in the background and "
        "log the next batch at once (chosen by the last model finished)",
    )
    consensus: ConsensusMethod = Field(
        ConsensusMethod.majority,
        description="majority | crowdlab: how several annotators' labels for a text become its training label",
    )
    activelab: bool = Field(
        False,
        description="ActiveLab: fill each batch with the lowest-scoring texts, new ones or one more label on a "
        "labelled one (logged as a linked relabel record)",
    )
    max_annotations: int = Field(5, ge=1, description="ActiveLab: never ask for more labels than this for one text")
    consensus_folds: int = Field(
        5, ge=2, description="K-fold out-of-sample predictions for crowdlab and ActiveLab (K models per round)"
    )
    retrain_every: int = Field(1, ge=1, description="train a new model every N completed batches (else query the last)")
    bald_samples: int = Field(20, ge=2, description="Monte-Carlo dropout passes per query (bald)")
    cold_start: ColdStart = Field(ColdStart.random, description="random | kmeans: how the first batch is drawn")
    seed: int = Field(0, description="seed of the initial random batch and the models")
    transformer_epochs: int = Field(3, ge=1, description="fine-tuning epochs per round (transformer model)")
    transformer_min_steps: int = Field(
        170,
        ge=0,
        description="transformer: at least this many optimizer steps per fine-tuning (more epochs while labels are few,"
        f" up to {MAX_EPOCHS}; 170 = what 3 epochs of 1,000 labels take); 0: AL_TRANSFORMER_EPOCHS always",
    )
    transformer_lr: float = Field(5e-5, gt=0, description="fine-tuning learning rate (transformer model)")
    transformer_weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (transformer model)")
    transformer_batch_size: int = Field(16, ge=1, description="fine-tuning mini-batch size (transformer, setfit)")
    transformer_max_length: int = Field(64, ge=8, description="max tokens per text (transformer, setfit)")
    setfit_iterations: int = Field(5, ge=1, description="SetFit: contrastive pairs per labelled text and epoch")
    setfit_epochs: int = Field(1, ge=1, description="SetFit: epochs of contrastive fine-tuning per round")

    # stopping
    stop_criteria: Annotated[list[Criterion], NoDecode] = Field(
        [Criterion.kappa_average],
        description="criteria that stop the daemon (comma list of kappa_average, delta_f_score, "
        "classification_change, overall_uncertainty; empty = only the caps below)",
    )
    stop_mode: StopMode = Field(StopMode.any, description="any | all: how the chosen criteria combine")
    kappa_threshold: float = Field(0.99, gt=0, le=1, description="KappaAverage fires when the window mean reaches it")
    kappa_window: int = Field(3, ge=1, description="KappaAverage window size (rounds)")
    delta_f_threshold: float = Field(0.05, gt=0, le=1, description="DeltaFScore fires when every delta is below it")
    delta_f_window: int = Field(3, ge=1, description="DeltaFScore window size (rounds)")
    classification_change_threshold: float = Field(
        0.01, ge=0, le=1, description="ClassificationChange fires when at most this share of predictions changed"
    )
    overall_uncertainty_threshold: float = Field(
        0.05, gt=0, lt=1, description="OverallUncertainty fires when mean normalised entropy falls below it"
    )
    max_rounds: int | None = Field(None, ge=1, description="cap: stop after this many trained rounds (MaxIterations)")
    max_labels: int | None = Field(None, ge=1, description="cap: stop once this many labels are in hand (budget)")
    exit_on_stop: bool = Field(True, description="exit 0 when stopped; false keeps serving status")
    export_dir: Path | None = Field(None, description="where the final export goes; default: <state_dir>/export")
    publish_progress: bool = Field(True, description="write each round's metrics into the dataset's guidelines")

    # process
    poll_interval: float = Field(2.0, gt=0, le=DAY, description="seconds between polls of Argilla")
    webhook_url: str | None = Field(
        None,
        description="URL at which Argilla reaches this daemon's /webhook (e.g. http://127.0.0.1:8765/webhook): "
        "signed events wake the poll at once (needs Argilla's worker); polling stays the fallback",
    )
    connect_timeout: float = Field(120.0, gt=0, le=DAY, description="seconds to wait for Argilla at start-up")
    ray_address: str | None = Field(
        None,
        description="Ray cluster that embeds and scores the pool, as its Ray Client address (ray://head:10001); "
        "unset: all local",
    )
    ray_workers: int = Field(2, ge=1, le=4096, description="embedding actors on the Ray cluster")
    ray_gpus_per_worker: float = Field(0.0, ge=0, le=64, description="GPUs each Ray embedding actor asks for")
    ray_fine_tune: bool = Field(
        False,
        description="fine-tune the transformer or setfit model as a Ray task (e.g. on a GPU worker while the daemon "
        "runs on a small CPU host); needs AL_RAY_ADDRESS",
    )
    ray_fine_tune_gpus: float = Field(0.0, ge=0, le=64, description="GPUs the Ray fine-tuning task asks for")
    ray_fine_tune_cpus: float = Field(1.0, gt=0, le=4096, description="CPUs the Ray fine-tuning task asks for")
    state_dir: Path = Field(Path("state"), description="where the run's state and journal live")
    cache_dir: Path | None = Field(None, description="embedding cache; default: <state_dir>/cache")
    status_host: str = Field("127.0.0.1", description="status endpoint bind address")
    status_port: int = Field(8765, ge=0, le=65535, description="status endpoint port (0 = any free port)")
    status_token: SecretStr | None = Field(
        None, description="bearer token for the status endpoint; required when status_host is not loopback"
    )
    log_level: str = Field("INFO", description="DEBUG | INFO | WARNING | ERROR")
    log_format: LogFormat = Field(LogFormat.text, description="text | json (one JSON object per line)")
    stop_timeout: float = Field(
        30.0, gt=0, le=DAY, description="seconds a SIGTERM waits for the current step before abandoning it"
    )

    @field_validator(
        "test_file",
        "id_column",
        "model_path",
        "max_rounds",
        "max_labels",
        "stuck_after",
        "export_dir",
        "cache_dir",
        "status_token",
        "webhook_url",
        "ray_address",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # AL_TEST_FILE= (empty) means "no test set", not the current directory
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("labels", "stop_criteria", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # "A,B,C" from the environment or a flag is friendlier than a JSON list; "none"/"never" is empty
        if isinstance(value, str):
            if value.strip().startswith("["):
                return value
            value = [value]
        if isinstance(value, list | tuple):
            parts = [p.strip() for item in value for p in (item.split(",") if isinstance(item, str) else [item])]
            return [p for p in parts if p != "" and str(p).lower() not in ("none", "never")]
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(set(value)) != len(value):
            raise ValueError(f"labels contain duplicates: {value}")
        if len(value) < 2:
            raise ValueError(f"need at least two labels to classify, got {value}")
        return value

    @field_validator("dataset", "workspace")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if len(value) > NAME_MAX:
            raise ValueError(f"is {len(value)} characters long; Argilla allows at most {NAME_MAX}")
        return value

    @field_validator("argilla_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"argilla_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("ray_address")
    @classmethod
    def _check_ray_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("ray://"):
            raise ValueError(
                f"ray_address must be a Ray Client address, ray://host:10001 (got {value!r}): a process connected "
                "to the cluster directly is ended by Ray when the cluster goes away, and the daemon must outlive it"
            )
        return value

    @field_validator("stop_criteria")
    @classmethod
    def _unique_criteria(cls, value: list[Criterion]) -> list[Criterion]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_bald_model(self) -> Settings:
        if self.query_strategy is QueryStrategyName.bald and self.model not in FINE_TUNED:
            raise ValueError(
                "query_strategy=bald needs dropout in the model: use AL_MODEL=transformer or setfit "
                f"(not {self.model.value})"
            )
        return self

    @model_validator(mode="after")
    def _check_ladder(self) -> Settings:
        if not isinstance(self.ladder, ModelKind):  # auto settles itself where a ladder can run (auto_ladder)
            return self
        if self.ladder is self.model:
            raise ValueError(f"ladder={self.ladder.value} is AL_MODEL already: name the model that may take over")
        if self.ladder in FINE_TUNED and self.training is Training.inline:
            raise ValueError(
                f"ladder={self.ladder.value} fine-tunes a network each round once it takes over: with "
                "AL_TRAINING=inline annotators would wait for it; use AL_TRAINING=auto (ahead once it takes over)"
            )
        if self.activelab or self.crowdlab:
            raise ValueError("the model ladder and activelab / consensus=crowdlab do not go together yet")
        return self

    @model_validator(mode="after")
    def _check_task(self) -> Settings:
        if self.task is not Task.auto and (problem := task_problem(self, self.task is Task.multi)):
            raise ValueError(problem)
        if self.none_label is not None:
            if not self.none_label.strip() or len(self.none_label) > NAME_MAX:
                raise ValueError(f"none_label must be 1-{NAME_MAX} characters")
            if self.labels and self.none_label in self.labels:
                raise ValueError(f"none_label {self.none_label!r} is also one of AL_LABELS: choose another name")
        return self

    @model_validator(mode="after")
    def _check_ray_fine_tune(self) -> Settings:
        if self.ray_fine_tune and self.ray_address is None:
            raise ValueError(
                "ray_fine_tune=true needs a cluster to fine-tune on: set AL_RAY_ADDRESS (ray://head:10001)"
            )
        if self.ray_fine_tune and self.model not in FINE_TUNED:
            raise ValueError(
                f"ray_fine_tune=true fine-tunes AL_MODEL=transformer or setfit on Ray; model {self.model.value} "
                "trains in well under a second here (its pool is scored on Ray already)"
            )
        return self

    @model_validator(mode="after")
    def _check_status_exposure(self) -> Settings:
        if not is_loopback(self.status_host) and self.status_token is None:
            raise ValueError(
                f"status_host={self.status_host!r} exposes the status endpoint beyond this machine: "
                "set AL_STATUS_TOKEN (clients then send 'Authorization: Bearer <token>')"
            )
        if self.status_token is not None and len(self.status_token.get_secret_value()) < 16:
            raise ValueError("status_token must be at least 16 characters")
        return self

    @model_validator(mode="after")
    def _check_multiannotator(self) -> Settings:
        wanted = [n for n, on in (("activelab=true", self.activelab), ("consensus=crowdlab", self.crowdlab)) if on]
        if wanted and self.ahead:
            raise ValueError(
                f"{' and '.join(wanted)} need the model trained inline (each round scores every label with K-fold "
                f"models before choosing the batch): set AL_TRAINING=inline (model {self.model.value} trains ahead "
                "by default)"
            )
        if wanted and self.retrain_every != 1:
            raise ValueError(f"{' and '.join(wanted)} need a model every round: set AL_RETRAIN_EVERY=1")
        if self.activelab and self.max_annotations < self.annotators_per_record:
            raise ValueError(
                f"max_annotations ({self.max_annotations}) is below annotators_per_record "
                f"({self.annotators_per_record}): no text could ever get its first labels"
            )
        return self

    def using(self, model: ModelKind | str | None) -> Settings:
        """These settings with another model (the model ladder's model in use, ``RunState.model_in_use``); the same
        settings when ``model`` is None or already AL_MODEL."""
        if model is None or ModelKind(model) is self.model:
            return self
        return self.model_copy(update={"model": ModelKind(model)})

    @property
    def ladder_model(self) -> ModelKind | None:
        """The model ladder's model: the one AL_LADDER names, or auto's once the task is known
        (:func:`daemon.inputs.task_settings`); None when off."""
        return self.ladder if isinstance(self.ladder, ModelKind) else None

    @property
    def crowdlab(self) -> bool:
        return self.consensus is ConsensusMethod.crowdlab

    @property
    def ahead(self) -> bool:
        """True when the next batch is queued ahead of training (AL_TRAINING, with auto resolved)."""
        if self.training is Training.auto:
            return self.model in FINE_TUNED
        return self.training is Training.ahead

    @property
    def cache_path(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"

    @property
    def export_path(self) -> Path:
        return self.export_dir or self.state_dir / "export"

    def public(self) -> dict:
        """The settings as JSON-safe values, with secrets masked (for logs, /status and the export report)."""
        data = self.model_dump(mode="json")
        data["argilla_api_key"] = "**********"
        if self.status_token is not None:
            data["status_token"] = "**********"
        return data


MULTI_LABEL_MODELS = (ModelKind.hybrid, ModelKind.embeddings, ModelKind.tfidf, ModelKind.transformer)
SINGLE_LABEL_STRATEGIES = (QueryStrategyName.bald,)
MULTI_LABEL_STRATEGIES = (QueryStrategyName.cvirs,)


def task_problem(settings: Settings, multi_label: bool) -> str | None:
    """What in ``settings`` does not fit a single- or multi-label task (None: all fits). Checked when the settings
    are read if AL_TASK names the task, else once the data shows it (``daemon.inputs``)."""
    strategy = settings.query_strategy
    if not multi_label:
        if strategy in MULTI_LABEL_STRATEGIES:
            return f"query_strategy={strategy.value} ranks label sets: it needs a multi-label task (AL_TASK=multi)"
        if settings.none_label is not None:
            return "none_label is for multi-label tasks (AL_TASK=multi): a single-label text always has one label"
        return None
    if settings.ladder_model is not None:
        return "the model ladder (AL_LADDER) compares single-label models only"
    if settings.model not in MULTI_LABEL_MODELS:
        names = ", ".join(m.value for m in MULTI_LABEL_MODELS)
        return f"model={settings.model.value} is single-label only here; a multi-label task needs one of {names}"
    if strategy in SINGLE_LABEL_STRATEGIES:
        return f"query_strategy={strategy.value} is for single-label tasks"
    if settings.activelab or settings.crowdlab:
        return (
            "activelab and consensus=crowdlab are single-label (cleanlab's multiannotator scores one class per "
            "vote): a multi-label task takes the per-label majority of its annotators (AL_CONSENSUS=majority)"
        )
    return None


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


SECTIONS = {  # first setting of each section -> its heading in .env.example
    "argilla_url": "Argilla",
    "pool_file": "Data",
    "batch_size": "Active learning",
    "stop_criteria": "Stopping and export",
    "poll_interval": "Process and status endpoint",
}


def _default_text(name: str) -> str | None:
    value = Settings.model_fields[name].default
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# the settings a new run must look at; every other line of `.env.example` is a comment showing the default, so
# copying the file to `.env` never overrides what a service unit or an image sets (systemd's EnvironmentFile=
# beats its Environment=, and compose's env_file beats the image's ENV)
TO_EDIT = ("argilla_url", "argilla_api_key", "workspace", "dataset", "pool_file", "test_file")


def env_example() -> str:
    """The text of `.env.example` (a unit test keeps the file equal to it)."""
    lines = [
        "# al-daemon settings. Copy to .env (or export as environment variables, or pass as `al-daemon run --flag`).",
        "# Every setting is AL_<NAME>; flags are --<name-with-dashes>. Precedence: flags > environment > .env.",
        "# Only the settings every run must look at are set here; the others show their default, commented out:",
        "# uncomment a line to change it (a set line would override what a systemd unit or a container image sets).",
    ]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += ["", f"# --- {SECTIONS[name]} ---"]
        lines.append(f"# {field.description}")
        default = _default_text(name)
        line = f"AL_{name.upper()}={'' if default is None else default}"
        lines.append(line if name in TO_EDIT and default is not None else f"# {line}")
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """The README's settings table (a unit test keeps the README's copy equal to it)."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _default_text(name)
        shown = "—" if default is None else f"`{default}`" if default else "(empty)"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `AL_{name.upper()}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


def auto_ladder(settings: Settings, multi_label: bool) -> ModelKind | Ladder:
    """What AL_LADDER=auto stands for in this run: the fine-tuned transformer where a ladder can run (a single-label
    task, a frozen AL_MODEL, AL_TRAINING not inline, neither ActiveLab nor CROWDLAB), off elsewhere. Chosen on the
    binary dev sets' validation splits, where the frozen model falls furthest behind (README, "The model ladder");
    not the default since bench/ladder_default.py measured TREC-6, where it cost 0.108 at 1,000 labels."""
    if multi_label or settings.model in FINE_TUNED or settings.training is Training.inline:
        return Ladder.off
    if settings.activelab or settings.crowdlab:
        return Ladder.off
    return AUTO_LADDER
