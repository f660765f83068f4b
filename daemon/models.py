"""Building a model's features and classifier factory from texts: embeddings, TF-IDF or a transformer."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from daemon.config import MAX_EPOCHS, MULTI_LABEL_MODELS, EncoderName, ModelKind, Settings
from daemon.encoders import Encoder
from daemon.encoders import resolve as resolve_encoder
from daemon.engine import engine_for
from daemon.features import Report
from daemon.inputs import model_name
from daemon.learner import Features, unlabelled_targets
from daemon.pool import TextTable, default_model_path, embed
from daemon.smalltext import PooledClassifierFactory, logistic_regression_factory

log = logging.getLogger(__name__)


class SentenceEncoder:
    """A scikit-learn transformer from texts to normalised sentence embeddings (front of the exported pipeline)."""

    def __init__(self, model_path: str, onnx_file: str | None = None) -> None:
        self.model_path = model_path
        self.onnx_file = onnx_file  # the int8 ONNX file in model_path the pool was embedded with (AL_ENCODER)
        self._model = None

    def fit(self, texts, y=None) -> SentenceEncoder:
        return self

    def transform(self, texts) -> np.ndarray:
        if self._model is None:
            name = EncoderName.torch if self.onnx_file is None else EncoderName.onnx_int8
            self._model = Encoder(name, Path(self.model_path), self.onnx_file).load()
        return self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "onnx_file": self.onnx_file, "_model": None}  # the path, not weights

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_path"], state.get("onnx_file"))  # models exported before AL_ENCODER: PyTorch

    def get_params(self, deep: bool = True) -> dict:
        return {"model_path": self.model_path, "onnx_file": self.onnx_file}

    def set_params(self, **params) -> SentenceEncoder:
        self.model_path = params.get("model_path", self.model_path)
        self.onnx_file = params.get("onnx_file", self.onnx_file)
        return self


class HybridEncoder:
    """Texts -> [sentence embedding | TF-IDF word 1-2-grams] as one sparse row: meaning from the encoder, the
    exact words (question words, names, units) from the n-grams. The vectorizer is fitted on the pool."""

    def __init__(self, model_path: str, vectorizer, onnx_file: str | None = None) -> None:
        self.model_path = model_path
        self.vectorizer = vectorizer
        self.onnx_file = onnx_file
        self._sentences = SentenceEncoder(model_path, onnx_file)

    def fit(self, texts, y=None) -> HybridEncoder:
        return self

    def transform(self, texts):
        if self._sentences.model_path != self.model_path:  # moved by set_params (load_model): load from there
            self._sentences = SentenceEncoder(self.model_path, self.onnx_file)
        return join_features(self._sentences.transform(texts), self.vectorizer.transform(list(texts)))

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "vectorizer": self.vectorizer, "onnx_file": self.onnx_file}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_path"], state["vectorizer"], state.get("onnx_file"))

    def get_params(self, deep: bool = True) -> dict:
        return {"model_path": self.model_path, "vectorizer": self.vectorizer, "onnx_file": self.onnx_file}

    def set_params(self, **params) -> HybridEncoder:
        self.model_path = params.get("model_path", self.model_path)
        self.vectorizer = params.get("vectorizer", self.vectorizer)
        self.onnx_file = params.get("onnx_file", self.onnx_file)
        return self


HYBRID_C = 100.0  # the hybrid model's logistic regression: C and class weights picked on a validation split
HYBRID_CLASS_WEIGHT = "balanced"  # (bench/defaults.py); balanced weights help while some classes have few labels


_NGRAM_CHUNK = 50_000  # texts turned into TF-IDF rows at a time


def fit_ngrams(texts: list[str]):
    """The hybrid model's TF-IDF of word 1-2-grams (sublinear term frequency, float32) fitted on ``texts``: the
    fitted vectorizer and the texts' rows. N-grams seen in one text only are dropped (they cannot carry a label
    to another text, and on large pools they are most of the vocabulary); a pool with no n-gram in two texts keeps
    them all.

    The same vectorizer and rows as scikit-learn's ``TfidfVectorizer(min_df=2).fit_transform``, built in two
    passes so that memory stays near the result: the document frequencies first (one count per distinct n-gram),
    then the rows a chunk of texts at a time with the vocabulary fixed. scikit-learn's single pass holds every
    n-gram occurrence of the pool as a Python int (~1 GB at 1M short texts, more for long ones) and every pruned
    n-gram in ``stop_words_``."""
    from collections import Counter

    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyze = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    frequency: Counter = Counter()
    for text in texts:
        frequency.update(set(analyze(text)))
    kept = sorted(term for term, count in frequency.items() if count >= 2) or sorted(frequency)
    if not kept:
        raise ValueError("the pool's texts have no words TF-IDF can use")
    df = np.array([frequency[term] for term in kept], dtype=np.float32)
    del frequency
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32, vocabulary={term: i for i, term in enumerate(kept)}
    )
    del kept
    # scikit-learn's smoothed idf, in float32 as TfidfTransformer computes it for float32 counts
    idf = np.full_like(df, fill_value=len(texts) + 1, dtype=np.float32)
    idf /= df + 1.0
    np.log(idf, out=idf)
    idf += 1.0
    vectorizer.idf_ = idf
    rows = [vectorizer.transform(texts[start : start + _NGRAM_CHUNK]) for start in range(0, len(texts), _NGRAM_CHUNK)]
    return vectorizer, sparse.vstack(rows, format="csr") if len(rows) > 1 else rows[0]


def join_features(dense: np.ndarray, sparse_part):
    """``[dense | sparse_part]`` as one float32 CSR matrix. The dense block is wrapped as CSR without a COO copy
    and scipy stacks CSR blocks row by row (``csr_hstack``): at 500k x 384 this keeps the peak near twice the
    result instead of five times."""
    from scipy import sparse

    dense = np.ascontiguousarray(dense, dtype=np.float32)
    rows, width = dense.shape
    wrapped = sparse.csr_matrix(
        (dense.ravel(), np.tile(np.arange(width, dtype=np.int32), rows), np.arange(rows + 1, dtype=np.int64) * width),
        shape=(rows, width),
    )
    return sparse.hstack([wrapped, sparse.csr_matrix(sparse_part, dtype=np.float32)], format="csr")


class JoinedRows:
    """``[dense | sparse]`` rows joined only when asked for: the hybrid model's pool matrix.

    Joined once for the whole pool, the embeddings would be held twice (the dense array the diversity strategies
    read, and again inside the CSR, with a column index per value: 3 KB a row at 384 dimensions, 3 GB at 1M
    texts). Here the pool keeps the two blocks as they are; indexing a set of rows (small-text does it for the
    labelled rows it trains on) returns them joined as one CSR matrix. A slice of rows stays in blocks (a view of
    the dense rows, a slice of the sparse ones): the pool is scored a slice at a time (:mod:`daemon.engine`) by
    :meth:`linear_proba`, without joining anything."""

    def __init__(self, dense: np.ndarray, sparse_part) -> None:
        from scipy import sparse

        if dense.shape[0] != sparse_part.shape[0]:
            raise ValueError(f"{dense.shape[0]} dense rows but {sparse_part.shape[0]} sparse rows")
        self.dense = dense
        self.sparse = sparse.csr_matrix(sparse_part, dtype=np.float32)
        self.shape = (dense.shape[0], dense.shape[1] + self.sparse.shape[1])
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        if isinstance(rows, tuple):  # small-text selects one row as (np.newaxis, i)
            rows = rows[-1]
        if isinstance(rows, slice):
            return JoinedRows(self.dense[rows], self.sparse[rows])
        if isinstance(rows, int | np.integer):
            rows = [rows]
        return self.joined(rows)

    def joined(self, rows=slice(None)):
        """The rows as one ``[dense | sparse]`` CSR matrix (what a scikit-learn estimator takes)."""
        return join_features(self.dense[rows], self.sparse[rows])

    def linear_proba(self, model) -> np.ndarray:
        """A fitted scikit-learn linear classifier's ``predict_proba`` for these rows, computed on the two blocks:
        the decision function is the dense rows times their coefficients (in float32, as the rows are) plus the
        sparse rows times theirs (equal to the joined row's product to ~1e-6), then scikit-learn's own mapping of
        ``LogisticRegression.predict_proba`` (expit for two classes, softmax otherwise). Other estimators get the
        joined rows."""
        from scipy.special import expit
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.utils.extmath import softmax

        if type(model) is OneVsRestClassifier and model.multilabel_:
            return self._one_vs_rest_proba(model)
        if type(model) is not LogisticRegression:
            return np.asarray(model.predict_proba(self.joined()), dtype=np.float64)
        decision = self._decision(np.asarray(model.coef_, dtype=np.float64), model.intercept_)
        if len(model.classes_) <= 2:
            positive = expit(decision[:, 0])
            return np.stack([1 - positive, positive], axis=1)
        return softmax(decision, copy=False)

    def _decision(self, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        width = self.dense.shape[1]
        dense = self.dense @ coef[:, :width].T.astype(np.float32)  # float32 BLAS: 4x a mixed-type product
        return dense.astype(np.float64) + np.asarray(self.sparse @ coef[:, width:].T) + intercept

    def _one_vs_rest_proba(self, model) -> np.ndarray:
        """Multi-label (small-text wraps the estimator in scikit-learn's OneVsRestClassifier): each label's
        ``predict_proba[:, 1]``, unnormalised as scikit-learn leaves it; a label that was constant in training
        (scikit-learn's constant predictor) keeps its constant."""
        from scipy.special import expit
        from sklearn.linear_model import LogisticRegression

        fitted = [e for e in model.estimators_ if type(e) is LogisticRegression]
        if any(len(e.classes_) != 2 for e in fitted):
            return np.asarray(model.predict_proba(self.joined()), dtype=np.float64)
        proba = np.empty((len(self), len(model.estimators_)))
        if fitted:
            coef = np.vstack([np.asarray(e.coef_, dtype=np.float64) for e in fitted])
            columns = [c for c, e in enumerate(model.estimators_) if type(e) is LogisticRegression]
            proba[:, columns] = expit(self._decision(coef, np.concatenate([e.intercept_ for e in fitted])))
        for column, estimator in enumerate(model.estimators_):
            if type(estimator) is not LogisticRegression:
                proba[:, column] = float(np.ravel(estimator.y_)[0])
        return proba

    @property
    def nbytes(self) -> int:
        return self.dense.nbytes + self.sparse.data.nbytes + self.sparse.indices.nbytes + self.sparse.indptr.nbytes


def build_features(
    settings: Settings,
    pool: TextTable,
    test: TextTable | None,
    y_test: np.ndarray | None,
    num_classes: int,
    progress: Report | None = None,
    multi_label: bool = False,
) -> Features:
    """Turn the pool and test texts into small-text datasets for the configured model (see :data:`MODELS`);
    ``progress(stage, done, total)`` follows the embedding (``stage``: "pool" or "test"). ``multi_label``: a set of
    labels per text (``y_test`` a 0/1 matrix, see :func:`daemon.learner.label_matrix`): the pool's targets are a
    label matrix and the classifier one yes/no regression per label (tfidf, embeddings, hybrid)."""
    if multi_label and settings.model not in MULTI_LABEL_MODELS:
        names = ", ".join(m.value for m in MULTI_LABEL_MODELS)
        raise ValueError(f"model {settings.model.value} is single-label only (multi-label: {names})")
    return MODELS[settings.model](settings, pool, test, y_test, num_classes, progress, multi_label)


def _pool_targets(multi_label: bool, size: int, num_classes: int) -> Any:
    return unlabelled_targets(size, num_classes if multi_label else None)


def _stage(progress: Report | None, stage: str) -> Callable[[int, int], None] | None:
    return None if progress is None else functools.partial(progress, stage)


def _encoder(settings: Settings, pool: TextTable) -> tuple[Path, Encoder]:
    """The sentence-encoder model folder and how it embeds this pool (AL_ENCODER; an ONNX copy is made here the
    first time)."""
    model_path = Path(settings.model_path or default_model_path())
    return model_path, resolve_encoder(settings.encoder, model_path, settings.cache_path, len(pool))


def _embed_pool(pool: TextTable, model_path, cache, progress, encoder, engine) -> np.ndarray:
    """The pool's embeddings (cached by the pool's fingerprint), then its training-only rows' (a warm start's
    texts the pool lacks: cached apart, so the pool's own cache serves seeded and unseeded runs alike)."""
    base = pool.queryable
    vectors = embed(pool.texts[:base], model_path, cache, pool.fingerprint, progress, encoder, engine)
    if not pool.training_only:
        return vectors
    extra = embed(pool.texts[base:], model_path, cache, pool.training_only_fingerprint, None, encoder, engine)
    return np.concatenate([vectors, extra])


def _pool_vectors(settings: Settings, pool: TextTable) -> Callable[[], np.ndarray]:
    """The pool's sentence embeddings on first use (cached on disk): what the diversity strategies and the k-means
    cold start read for the fine-tuned models, instead of a pass of the fine-tuned model over the pool."""

    def vectors() -> np.ndarray:
        model_path, encoder = _encoder(settings, pool)
        return _embed_pool(pool, model_path, settings.cache_path, None, encoder, engine_for(settings))

    return functools.cache(vectors)


def _embedding_features(settings, pool, test, y_test, num_classes, progress=None, multi_label=False) -> Features:
    from small_text import SklearnDataset

    model_path, encoder = _encoder(settings, pool)
    cache, engine = settings.cache_path, engine_for(settings)
    x_pool = _embed_pool(pool, model_path, cache, _stage(progress, "pool"), encoder, engine)
    test_ds = None
    if test is not None:
        x_test = embed(test.texts, model_path, cache, test.fingerprint, _stage(progress, "test"), encoder, engine)
        test_ds = SklearnDataset(x_test, y_test, target_labels=np.arange(num_classes))
    pool_ds = SklearnDataset(
        x_pool, _pool_targets(multi_label, len(pool), num_classes), target_labels=np.arange(num_classes)
    )
    factory = logistic_regression_factory(num_classes, settings.seed, c=10.0, engine=engine, multi_label=multi_label)
    return Features(
        pool=pool_ds,
        test=test_ds,
        factory=factory,
        name=model_name(settings),
        encoder=SentenceEncoder(str(encoder.path), encoder.onnx_file),
        vectors=lambda: x_pool,
    )


def _hybrid_features(settings, pool, test, y_test, num_classes, progress=None, multi_label=False) -> Features:
    """Embeddings and TF-IDF side by side, C=100 with balanced class weights: picked on a validation split carved
    from TREC-6's training file (bench/defaults.py; the test set was not looked at): +0.07-0.10 accuracy over
    embeddings alone at 100-400 labels."""
    from small_text import SklearnDataset

    model_path, encoder = _encoder(settings, pool)
    cache, engine = settings.cache_path, engine_for(settings)
    x_emb = _embed_pool(pool, model_path, cache, _stage(progress, "pool"), encoder, engine)
    vectorizer, ngrams = fit_ngrams(pool.texts)
    x_pool = JoinedRows(x_emb, ngrams)  # the embeddings held once (the diversity strategies read them too)
    del ngrams
    pool_ds = SklearnDataset(
        x_pool, _pool_targets(multi_label, len(pool), num_classes), target_labels=np.arange(num_classes)
    )
    test_ds = None
    if test is not None:
        x_test = join_features(
            embed(test.texts, model_path, cache, test.fingerprint, _stage(progress, "test"), encoder, engine),
            vectorizer.transform(test.texts),
        )
        test_ds = SklearnDataset(x_test, y_test, target_labels=np.arange(num_classes))
    return Features(
        pool=pool_ds,
        test=test_ds,
        # newton-cg: 3.5x faster than lbfgs on these wide sparse rows (400 labels x ~200k columns: 0.21 s vs 0.75 s)
        factory=logistic_regression_factory(
            num_classes,
            settings.seed,
            c=HYBRID_C,
            solver="newton-cg",
            class_weight=HYBRID_CLASS_WEIGHT,
            engine=engine,
            multi_label=multi_label,
        ),
        name=model_name(settings),
        encoder=HybridEncoder(str(encoder.path), vectorizer, encoder.onnx_file),
        vectors=lambda: x_emb,  # diversity strategies and the k-means cold start use the embeddings
    )


def _tfidf_features(settings, pool, test, y_test, num_classes, progress=None, multi_label=False) -> Features:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from small_text import SklearnDataset

    vectorizer = TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True, min_df=1)
    x_pool = vectorizer.fit_transform(pool.texts)
    pool_ds = SklearnDataset(
        x_pool, _pool_targets(multi_label, len(pool), num_classes), target_labels=np.arange(num_classes)
    )
    test_ds = (
        SklearnDataset(vectorizer.transform(test.texts), y_test, target_labels=np.arange(num_classes))
        if test is not None
        else None
    )
    factory = logistic_regression_factory(
        num_classes, settings.seed, c=10.0, engine=engine_for(settings), multi_label=multi_label
    )
    return Features(
        pool=pool_ds,
        test=test_ds,
        factory=factory,
        name=model_name(settings),
        encoder=vectorizer,
        vectors=functools.cache(lambda: _svd_rows(x_pool, settings.seed)),
    )


def _svd_rows(x, seed: int, dims: int = 100) -> np.ndarray:
    """Dense vectors for TF-IDF rows (latent semantic analysis), for the diversity strategies and cold start."""
    from sklearn.decomposition import TruncatedSVD

    dims = max(1, min(dims, x.shape[1] - 1, x.shape[0] - 1))
    return TruncatedSVD(n_components=dims, random_state=seed).fit_transform(x)


def _transformer_features(settings, pool, test, y_test, num_classes, progress=None, multi_label=False) -> Features:
    from small_text import TransformerModelArguments, TransformersDataset
    from small_text.utils.logging import VERBOSITY_MORE_VERBOSE
    from transformers import AutoTokenizer

    model_path = str(settings.model_path or default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    labels = np.arange(num_classes)
    max_length = settings.transformer_max_length

    def dataset(texts: list[str], y: np.ndarray) -> TransformersDataset:
        return TransformersDataset.from_arrays(texts, y, tokenizer, max_length=max_length, target_labels=labels)

    pool_ds = dataset(pool.texts, _pool_targets(multi_label, len(pool), num_classes))
    test_ds = dataset(test.texts, y_test) if test is not None else None
    kwargs = {
        "device": device(),
        "num_epochs": settings.transformer_epochs,
        "lr": settings.transformer_lr,
        "mini_batch_size": settings.transformer_batch_size,
        "verbosity": VERBOSITY_MORE_VERBOSE,  # one log line per epoch: progress of long fine-tuning
    }
    # multi-label: one sigmoid output per label, binary cross-entropy (small-text's multi_label=True); its class
    # weights are for single-label targets only
    kwargs |= {"multi_label": True} if multi_label else {"class_weight": "balanced"}
    inner = TunedTransformerFactory(
        TransformerModelArguments(model_path),
        num_classes,
        weight_decay=settings.transformer_weight_decay,
        kwargs=kwargs,
        min_steps=settings.transformer_min_steps,
    )
    vectors = _pool_vectors(settings, pool)
    return Features(
        pool=pool_ds,
        test=test_ds,
        factory=PooledClassifierFactory(inner, num_classes, engine=engine_for(settings)),
        name=model_name(settings),
        vectors=vectors,
    )


def _setfit_features(settings, pool, test, y_test, num_classes, progress=None, multi_label=False) -> Features:
    """SetFit through small-text's integration: each round fine-tunes the sentence encoder contrastively on pairs
    of labelled texts, then fits a logistic-regression head on its embeddings."""
    from small_text.integrations.transformers.classifiers.base import ModelLoadingStrategy
    from small_text.integrations.transformers.classifiers.setfit import SetFitModelArguments

    model_path = str(settings.model_path or default_model_path())
    labels = np.arange(num_classes)
    dataset = _setfit_classes()[0]
    pool_ds = dataset(pool.texts, unlabelled_targets(len(pool)), target_labels=labels)
    test_ds = dataset(test.texts, y_test, target_labels=labels) if test is not None else None
    factory = _setfit_classes()[1](
        SetFitModelArguments(model_path, ModelLoadingStrategy.ALWAYS_LOCAL),
        num_classes,
        classification_kwargs={
            "device": device(),
            "mini_batch_size": settings.transformer_batch_size,
            "max_seq_len": settings.transformer_max_length,
            "trainer_kwargs": {"num_iterations": settings.setfit_iterations, "num_epochs": settings.setfit_epochs},
        },
    )
    vectors = _pool_vectors(settings, pool)
    return Features(
        pool=pool_ds,
        test=test_ds,
        factory=PooledClassifierFactory(factory, num_classes, engine=engine_for(settings)),
        name=model_name(settings),
        vectors=vectors,
    )


# AL_MODEL -> the function that builds its features (as smalltext.STRATEGIES maps AL_STRATEGY to a query strategy)
MODELS = {
    ModelKind.embeddings: _embedding_features,
    ModelKind.hybrid: _hybrid_features,
    ModelKind.tfidf: _tfidf_features,
    ModelKind.transformer: _transformer_features,
    ModelKind.setfit: _setfit_features,
}


@functools.cache
def _setfit_classes():
    """small-text 1.4.1's SetFit integration, fixed for numpy 2: its dataset views test
    ``np.lib.index_tricks`` (private in numpy 2) and its trainer seed draws past int64 (``ValueError: high is
    out of bounds``). Subsets are materialised instead of viewed, and the seed is drawn in range."""
    import tempfile

    import transformers
    from setfit import SetFitTrainer
    from small_text import TextDataset
    from small_text.integrations.transformers.classifiers.factories import SetFitClassificationFactory
    from small_text.integrations.transformers.classifiers.setfit import SetFitClassification

    class SubsetTextDataset(TextDataset):
        def __getitem__(self, item):
            rows = np.atleast_1d(np.arange(len(self.x))[item])
            return SubsetTextDataset([self.x[i] for i in rows], self.y[rows], target_labels=self.target_labels)

    class Classification(SetFitClassification):
        def _fit(self, sub_train, sub_valid, setfit_train_kwargs):
            seed = int(np.random.randint(2**31 - 1))  # from numpy's global RNG, which the learner seeds
            trainer = SetFitTrainer(
                self.model,
                sub_train,
                eval_dataset=sub_valid,
                batch_size=self.mini_batch_size,
                seed=seed,
                **self.trainer_kwargs,
            )
            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()  # the trainer's banner and per-step lines
            # the trainer saves checkpoints (~270 MB) under output_dir, by default ./checkpoints: keep them out of
            # the service's working directory and delete them with the round
            with tempfile.TemporaryDirectory(prefix="al-setfit-") as scratch:
                trainer.args.output_dir = scratch
                try:
                    trainer.train(max_length=self.max_seq_len, show_progress_bar=False, **setfit_train_kwargs)
                finally:
                    transformers.logging.set_verbosity(verbosity)
            return self

    class Factory(SetFitClassificationFactory):
        def new(self):
            return Classification(self.setfit_model_args, self.num_classes, **self.classification_kwargs)

    return SubsetTextDataset, Factory


def device() -> str:
    """CUDA when torch sees a GPU, else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


SELECT_BY = ["val_acc", "val_loss"]  # the epoch kept: the best held-out accuracy, ties to the lower loss


@functools.cache
def _tuned_classes():
    """small-text's transformer classifier with AdamW's weight decay as a setting (it hard-codes torch's default),
    and its epoch kept and its early stop judged by held-out accuracy rather than loss.

    small-text keeps the epoch with the lowest loss on its held-out tenth of the labels (ties to accuracy) and stops
    once more than 5 epochs have passed without a lower one. A fine-tune's held-out loss can rise from the first
    epoch on while its accuracy climbs (the model grows confident on the texts it gets wrong), and then the epoch
    kept was the first, near chance: on CR's 500 labels (seed 2) held-out accuracy went 48, 60, 74, 78, 78, 78 % over
    the six epochs while the loss rose from 0.057 to 0.074, and the fine-tune kept epoch 1 (0.52 on validation; 0.875
    with the epoch kept here). The stop had the same blind spot: with 15 epochs asked for (AL_TRANSFORMER_MIN_STEPS
    at 200 labels) such a run ends after the seventh."""
    from small_text import TransformerBasedClassification, TransformerBasedClassificationFactory
    from small_text.training.early_stopping import EarlyStopping
    from small_text.training.metrics import Metric
    from small_text.training.model_selection import ModelSelection
    from torch.optim import AdamW

    class TunedTransformerClassification(TransformerBasedClassification):
        def __init__(self, *args, weight_decay: float = 0.01, min_steps: int = 0, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.weight_decay = weight_decay
            self.min_steps = min_steps
            self.base_epochs = self.num_epochs
            self.kept: dict | None = None  # the epoch the last fit kept (None: no fit yet, or no model selection)

        def _fit_main(self, sub_train, *args, **kwargs):
            self.num_epochs = epochs_for(len(sub_train), self.mini_batch_size, self.base_epochs, self.min_steps)
            return super()._fit_main(sub_train, *args, **kwargs)

        @staticmethod
        def _get_default_model_selection(model_selection):
            if model_selection is None:
                return ModelSelection(default_select_by=SELECT_BY)
            return TransformerBasedClassification._get_default_model_selection(model_selection)

        def _get_default_early_stopping(self, early_stopping, no_improvement, *args, **kwargs):
            if early_stopping is None and no_improvement > 0:
                patience = no_improvement * self.validations_per_epoch
                return EarlyStopping(Metric("val_acc", lower_is_better=False), patience=patience)
            return super()._get_default_early_stopping(early_stopping, no_improvement, *args, **kwargs)

        def _perform_model_selection(self, optimizer, model_selection):
            super()._perform_model_selection(optimizer, model_selection)
            chosen = model_selection.select()
            if chosen is None:  # model selection off, or every epoch flagged by the early stop
                self.kept = None
                return
            values = chosen.measured_values
            self.kept = {
                "epoch": int(str(chosen.model_id).split("-")[0]) + 1,  # small-text's ids: "<epoch from 0>-b<batch>"
                "epochs": len(model_selection.models),
                "held_out_accuracy": round(float(values["val_acc"]), 4),
                "held_out_loss": round(float(values["val_loss"]), 4),
            }
            log.info(
                "fine-tuning kept epoch %(epoch)d of %(epochs)d (held-out accuracy %(held_out_accuracy).3f, "
                "loss %(held_out_loss).4f)",
                self.kept,
            )

        def _default_optimizer(self, base_lr):
            params, _ = super()._default_optimizer(base_lr)
            return params, AdamW(params, lr=base_lr, eps=1e-8, weight_decay=self.weight_decay)

    class Factory(TransformerBasedClassificationFactory):
        def __init__(self, model_args, num_classes, weight_decay: float, kwargs=None, min_steps: int = 0) -> None:
            super().__init__(model_args, num_classes, kwargs=kwargs or {})
            self.weight_decay = weight_decay
            self.min_steps = min_steps

        def new(self):
            return TunedTransformerClassification(
                self.transformer_model_args,
                self.num_classes,
                weight_decay=self.weight_decay,
                min_steps=self.min_steps,
                **self.kwargs,
            )

    return TunedTransformerClassification, Factory


def TunedTransformerFactory(model_args, num_classes: int, weight_decay: float, kwargs: dict, min_steps: int = 0):  # noqa: N802
    return _tuned_classes()[1](model_args, num_classes, weight_decay, kwargs, min_steps)


def epochs_for(rows: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Fine-tuning epochs over ``rows`` training texts: ``epochs``, or more while the labels are few, so that one
    fine-tuning takes at least ``min_steps`` optimizer steps (AL_TRANSFORMER_MIN_STEPS), at most MAX_EPOCHS. With
    200 labels a 3-epoch fine-tuning takes 36 steps and falls to the majority class on MR; see README, *What
    fine-tuning is worth*."""
    steps_per_epoch = max(1, math.ceil(rows / batch_size))
    return max(epochs, min(MAX_EPOCHS, math.ceil(min_steps / steps_per_epoch)))
