"""Settings: the one place the environment, `.env` and command-line flags are read.

Every setting is an environment variable prefixed ``AL_`` (``AL_BATCH_SIZE=20``), a line in ``.env``, or a
flag of ``al-daemon run`` (``--batch-size 20``); flags win over the environment, which wins over ``.env``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelKind(StrEnum):
    """Which classifier the learner trains."""

    embeddings = "embeddings"  # frozen sentence embeddings + logistic regression (fast default)
    transformer = "transformer"  # fine-tune a local Hugging Face model directory
    tfidf = "tfidf"  # TF-IDF + logistic regression, no torch needed at run time


class QueryStrategyName(StrEnum):
    breaking_ties = "breaking_ties"
    least_confidence = "least_confidence"
    prediction_entropy = "prediction_entropy"
    random = "random"


class StoppingRule(StrEnum):
    kappa = "kappa"  # small-text KappaAverage
    max_rounds = "max_rounds"
    max_labels = "max_labels"
    never = "never"


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
    )

    # Argilla
    argilla_url: str = Field("http://127.0.0.1:6900", description="Argilla server URL")
    argilla_api_key: SecretStr = Field(SecretStr("argilla.apikey"), description="API key of an owner/admin user")
    workspace: str = Field("argilla", description="Argilla workspace of the dataset")
    dataset: str = Field("al-daemon", description="Argilla dataset name (created if missing)")
    annotators_per_record: int = Field(1, ge=1, description="submitted responses that complete a record")

    # data
    pool_file: Path = Field(
        Path("data/trec6/train.jsonl"), description="unlabelled pool: JSONL/CSV/Parquet/datasets dir"
    )
    test_file: Path | None = Field(Path("data/trec6/test.jsonl"), description="labelled test set (optional)")
    text_column: str = Field("text", description="column holding the text")
    label_column: str = Field("label", description="column holding gold labels (test set; pool for simulation)")
    id_column: str | None = Field("id", description="optional column of unique row ids")
    labels: list[str] | None = Field(None, description="label set; derived from the data when unset")

    # active learning
    batch_size: int = Field(20, ge=1, description="records per batch")
    model: ModelKind = Field(ModelKind.embeddings, description="embeddings | transformer | tfidf")
    model_path: Path | None = Field(None, description="local HF model dir; default: the bundled all-MiniLM-L6-v2")
    query_strategy: QueryStrategyName = Field(QueryStrategyName.breaking_ties, description="query strategy")
    seed: int = Field(0, description="seed of the initial random batch and the models")
    transformer_epochs: int = Field(3, ge=1, description="fine-tuning epochs per round (transformer model)")
    transformer_lr: float = Field(5e-5, gt=0, description="fine-tuning learning rate (transformer model)")
    transformer_batch_size: int = Field(16, ge=1, description="fine-tuning mini-batch size")
    transformer_max_length: int = Field(64, ge=8, description="max tokens per text (transformer model)")

    # stopping
    stopping_rule: StoppingRule = Field(StoppingRule.kappa, description="kappa | max_rounds | max_labels | never")
    kappa_threshold: float = Field(0.99, gt=0, le=1, description="KappaAverage stops when the window mean reaches it")
    kappa_window: int = Field(3, ge=1, description="KappaAverage window size (rounds)")
    max_rounds: int | None = Field(None, ge=1, description="stop after this many trained rounds (also a safety cap)")
    max_labels: int | None = Field(None, ge=1, description="stop once this many labels are in hand")
    exit_on_stop: bool = Field(True, description="exit 0 when stopped; false keeps serving status")

    # process
    poll_interval: float = Field(2.0, gt=0, description="seconds between polls of Argilla")
    state_dir: Path = Field(Path("state"), description="where the run's state and journal live")
    cache_dir: Path | None = Field(None, description="embedding cache; default: <state_dir>/cache")
    status_host: str = Field("127.0.0.1", description="status endpoint bind address")
    status_port: int = Field(8765, ge=0, le=65535, description="status endpoint port (0 = any free port)")
    log_level: str = Field("INFO", description="DEBUG | INFO | WARNING | ERROR")

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        # "A,B,C" from the environment or a flag is friendlier than a JSON list
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
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

    @field_validator("argilla_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"argilla_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_stopping(self) -> Settings:
        if self.stopping_rule is StoppingRule.max_rounds and self.max_rounds is None:
            raise ValueError("stopping_rule=max_rounds needs max_rounds")
        if self.stopping_rule is StoppingRule.max_labels and self.max_labels is None:
            raise ValueError("stopping_rule=max_labels needs max_labels")
        return self

    @property
    def cache_path(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"

    def public(self) -> dict:
        """The settings as JSON-safe values, with the API key masked (for logs and /status)."""
        data = self.model_dump(mode="json")
        data["argilla_api_key"] = "**********"
        return data
