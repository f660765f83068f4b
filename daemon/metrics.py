"""``/metrics`` in the Prometheus text format, built from the status document at scrape time.

Everything comes from the persisted state (plus the gateway's error counts), so counters and histograms
survive restarts instead of starting from zero; Prometheus copes with the rare reset either way. The standard
``process_*`` and ``python_*`` families (memory, CPU, file descriptors, GC) come from prometheus_client's own
collectors, registered on the same per-scrape registry (never the global one, which would duplicate them).

Timestamps are unix seconds, for alerts such as ``time() - al_argilla_last_contact_timestamp_seconds > 600``;
a value not known yet (no round trained, Argilla never reached) has no sample at all rather than 0 or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from daemon.phases import Phase

PHASES = ("read", "train", "evaluate", "query", "log", "handover", "prepare")
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StatusCollector(Collector):
    def __init__(self, status: dict) -> None:
        self.status = status

    def collect(self) -> Iterator:
        s = self.status
        info = InfoMetricFamily("al_daemon", "The run this daemon drives")
        info.add_metric(
            [],
            {
                "version": str(s.get("version", "")),
                "dataset": str(s.get("dataset", "")),
                "workspace": str(s.get("workspace", "")),
                "model": str(s.get("model", "")),
                "query_strategy": str(s.get("query_strategy", "")),
            },
        )
        yield info

        state = GaugeMetricFamily("al_state", "1 for the daemon's current state", labels=["state"])
        for phase in Phase:
            state.add_metric([phase.value], 1.0 if s.get("state") == phase.value else 0.0)
        yield state

        yield _counter("al_rounds", "Training rounds completed", s.get("round", 0))
        yield _counter("al_labels", "Labels in hand (submitted, used for training)", s.get("labels", 0))
        yield _counter(
            "al_discarded_records", "Records discarded by annotators (never trained on)", s.get("discarded", 0)
        )
        yield _gauge("al_pool_records", "Records in the unlabelled pool file", s.get("pool_size"))
        yield _gauge("al_pool_unlabelled_records", "Pool records not yet labelled or discarded", s.get("unlabelled"))

        annotation = s.get("annotation") or {}
        yield _counter("al_annotations", "Submitted answers counted as votes", annotation.get("annotations", 0))
        yield _counter(
            "al_relabel_requests", "ActiveLab requests for more labels", annotation.get("relabel_requests", 0)
        )
        yield _gauge(
            "al_annotator_agreement_ratio",
            "Mean share of a text's votes equal to its consensus (texts with several votes)",
            annotation.get("mean_agreement"),
        )

        batch = s.get("batch") or {}
        yield _gauge("al_batch_id", "Id of the batch in front of annotators", batch.get("batch_id"))
        yield _gauge("al_batch_records", "Records in the current batch", batch.get("total"))
        records = GaugeMetricFamily("al_batch_progress_records", "Current batch records by status", labels=["status"])
        for key in ("completed", "discarded", "pending", "missing"):
            if batch.get(key) is not None:
                records.add_metric([key], float(batch[key]))
        yield records
        yield _gauge(
            "al_batch_created_timestamp_seconds",
            "Unix time the current batch was journaled (and logged to Argilla right after)",
            _unix_time(batch.get("created_at")),
        )

        for key, name, text in (
            ("accuracy", "al_test_accuracy_ratio", "Test-set accuracy of the latest model"),
            ("macro_f1", "al_test_macro_f1_ratio", "Test-set macro-F1 of the latest model"),
            ("micro_f1", "al_test_micro_f1_ratio", "Test-set micro-F1 of the latest model (multi-label)"),
            ("hamming_loss", "al_test_hamming_loss_ratio", "Test-set Hamming loss of the latest model (multi-label)"),
        ):
            values = s.get(key) or {}
            yield _gauge(name, text, values.get("last"))
            yield _gauge(name.replace("al_test_", "al_test_best_"), text.replace("latest", "best"), values.get("best"))

        signal = GaugeMetricFamily(
            "al_stopping_signal", "Latest value of each stopping criterion", labels=["criterion"]
        )
        threshold = GaugeMetricFamily(
            "al_stopping_threshold", "Threshold of each stopping criterion", labels=["criterion"]
        )
        fired = GaugeMetricFamily(
            "al_stopping_fired", "1 if the criterion fired in the latest round", labels=["criterion"]
        )
        stops = GaugeMetricFamily("al_stopping_enabled", "1 if the criterion may stop the daemon", labels=["criterion"])
        for name, view in (s.get("signals") or {}).items():
            if view.get("value") is not None:
                signal.add_metric([name], float(view["value"]))
            if view.get("threshold") is not None:
                threshold.add_metric([name], float(view["threshold"]))
            fired.add_metric([name], 1.0 if view.get("fired") else 0.0)
            stops.add_metric([name], 1.0 if view.get("stops") else 0.0)
        yield from (signal, threshold, fired, stops)
        stop = s.get("stop") or {}
        yield _gauge(
            "al_projected_stop_round", "Round at which KappaAverage is projected to fire", stop.get("projected_round")
        )

        histogram = HistogramMetricFamily(
            "al_round_phase_duration_seconds", "Seconds spent per phase of each training round", labels=["phase"]
        )
        history = s.get("history") or []
        for phase in PHASES:
            observed = [row["seconds"][phase] for row in history if phase in (row.get("seconds") or {})]
            if not observed:
                continue
            buckets = [(str(b), float(sum(1 for v in observed if v <= b))) for b in BUCKETS]
            buckets.append(("+Inf", float(len(observed))))
            histogram.add_metric([phase], buckets, sum_value=float(sum(observed)))
        yield histogram

        errors = CounterMetricFamily("al_argilla_request_errors", "Failed Argilla requests by kind", labels=["kind"])
        for kind in ("unavailable", "refused"):
            errors.add_metric([kind], float((s.get("argilla_errors") or {}).get(kind, 0)))
        yield errors

        yield _gauge(
            "al_last_round_timestamp_seconds",
            "Unix time the last training round finished",
            _unix_time((s.get("last_round") or {}).get("finished_at")),
        )
        yield _gauge(
            "al_argilla_last_contact_timestamp_seconds",
            "Unix time of the last successful exchange with Argilla",
            s.get("argilla_last_contact"),
        )

        features = s.get("features")
        if features:  # built off the start-up path: how far the embedding is (daemon/features.py)
            yield _gauge(
                "al_features_ready",
                "1 once the model's features exist (0: batches are drawn at random)",
                1.0 if features.get("state") == "ready" else 0.0,
            )
            texts = GaugeMetricFamily(
                "al_features_texts", "Texts embedded so far and in all (the current stage)", labels=["status"]
            )
            for key in ("done", "total"):
                if features.get(key) is not None:
                    texts.add_metric([key], float(features[key]))
            yield texts
            yield _gauge("al_features_texts_per_second", "Embedding throughput", features.get("rate"))
            yield _gauge("al_features_eta_seconds", "Seconds until the features are ready", features.get("eta_seconds"))

        ladder = s.get("ladder")
        if ladder:  # AL_LADDER: whether the second model took over the batches, and how the comparisons went
            yield _gauge(
                "al_ladder_taken_over",
                "1 once the model ladder's second model chooses the batches",
                float(ladder["taken_over"]),
            )
            yield _gauge("al_ladder_comparisons", "Comparisons the model ladder made", len(ladder["comparisons"]))
            probing = ladder.get("probing")
            yield _gauge(
                "al_ladder_probes_waiting",
                "Probes of the model ladder's comparison in progress not yet labelled (AL_LADDER_COMPARE=probes)",
                float(probing["waiting"]) if probing else 0.0,
            )
            if ladder["comparisons"]:
                last = ladder["comparisons"][-1]
                yield _gauge(
                    "al_ladder_lead",
                    "Last comparison's lead of the candidate in accuracy (probes: estimated)",
                    last["lead"],
                )
                if last.get("method", "cv") == "cv":
                    accuracy = GaugeMetricFamily(
                        "al_ladder_cv_accuracy_ratio", "Last comparison's cross-validated accuracy", labels=["model"]
                    )
                    accuracy.add_metric(["current"], float(last["current_accuracy"]))
                    accuracy.add_metric(["candidate"], float(last["candidate_accuracy"]))
                    yield accuracy

        engine = s.get("engine")
        if engine and engine.get("name") == "ray":  # AL_RAY_ADDRESS: steps the cluster failed, run here instead
            fallbacks = CounterMetricFamily(
                "al_ray_fallbacks", "Embedding or scoring steps run on this machine because the Ray cluster failed"
            )
            fallbacks.add_metric([], float(engine.get("fallbacks") or 0))
            yield fallbacks


def _unix_time(value) -> float | None:
    """An ISO-8601 time (the state's ``finished_at``; naive means UTC) as unix seconds; None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _gauge(name: str, documentation: str, value) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        family.add_metric([], float(value))
    return family


def _counter(name: str, documentation: str, value) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value or 0))


def render_metrics(status: dict) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    # the standard process_* / python_* families, on this registry only (the global REGISTRY is never scraped here)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return generate_latest(registry)
