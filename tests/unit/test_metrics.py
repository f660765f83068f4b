"""/metrics parses with Prometheus' own parser and carries the run's numbers."""

import time
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics import render_metrics

TIMESTAMPS = (
    "al_last_round_timestamp_seconds",
    "al_argilla_last_contact_timestamp_seconds",
    "al_batch_created_timestamp_seconds",
)


def families(status):
    return {f.name: f for f in text_string_to_metric_families(render_metrics(status).decode())}


def sample(family, **labels):
    return next(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_and_match_the_status(finished_run):
    status = finished_run[1].status()
    parsed = families(status)
    assert sample(parsed["al_rounds"]) == 4 and parsed["al_rounds"].type == "counter"
    assert sample(parsed["al_labels"]) == status["labels"]
    assert sample(parsed["al_state"], state="stopped") == 1
    assert sample(parsed["al_state"], state="training") == 0
    assert sample(parsed["al_test_accuracy_ratio"]) == status["accuracy"]["last"]
    kappa = status["signals"]["kappa_average"]["value"]
    assert sample(parsed["al_stopping_signal"], criterion="kappa_average") == kappa
    assert sample(parsed["al_stopping_fired"], criterion="max_iterations") == 1
    assert sample(parsed["al_stopping_enabled"], criterion="kappa_average") == 1
    assert sample(parsed["al_stopping_enabled"], criterion="overall_uncertainty") == 0
    histogram = parsed["al_round_phase_duration_seconds"]
    assert histogram.type == "histogram"
    count = next(s for s in histogram.samples if s.name.endswith("_count") and s.labels["phase"] == "train")
    assert count.value == 4
    inf = next(s for s in histogram.samples if s.labels.get("le") == "+Inf" and s.labels["phase"] == "query")
    assert inf.value == 3  # the stopping round queries nothing
    assert sample(parsed["al_argilla_request_errors"], kind="unavailable") == 0
    assert parsed["al_daemon_info"].samples[0].labels["dataset"] == "d"


def test_timestamps_to_alert_on(finished_run):
    status = finished_run[1].status()
    parsed = families(status)
    for name in TIMESTAMPS:
        assert parsed[name].type == "gauge", name
    finished = datetime.fromisoformat(status["last_round"]["finished_at"]).timestamp()
    assert sample(parsed["al_last_round_timestamp_seconds"]) == finished
    contact = sample(parsed["al_argilla_last_contact_timestamp_seconds"])
    assert contact == status["argilla_last_contact"] and abs(contact - time.time()) < 120  # unix time, not monotonic
    assert abs(finished - time.time()) < 120
    created = datetime.fromisoformat(status["batch"]["created_at"]).timestamp()
    assert sample(parsed["al_batch_created_timestamp_seconds"]) == created <= finished + 1


def test_process_and_python_families_come_along_once():
    text = render_metrics({"state": "waiting-for-annotators", "round": 1, "labels": 6}).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_start_time_seconds", "python_info"):
        assert parsed[name].samples, name
    assert parsed["process_cpu_seconds"].type == "counter"
    assert parsed["python_gc_collections"].samples  # GCCollector (CPython)
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))  # each family once, also on the next scrape
    assert render_metrics({"state": "starting"}).decode().count("# TYPE process_resident_memory_bytes") == 1


def test_metrics_of_a_daemon_still_starting():
    parsed = families({"state": "starting", "round": 0, "labels": 0, "last_round": None, "argilla_last_contact": None})
    assert sample(parsed["al_state"], state="starting") == 1
    assert parsed["al_test_accuracy_ratio"].samples == []
    for name in TIMESTAMPS:  # not known yet: no sample (an alert on 0 would fire at once)
        assert parsed[name].samples == [], name
    text = render_metrics({"state": "starting", "last_round": {"finished_at": "not a time"}}).decode()
    assert "NaN" not in text and "\nal_last_round_timestamp_seconds " not in text
    naive = families({"state": "waiting-for-annotators", "last_round": {"finished_at": "2026-01-01T00:00:00"}})
    assert sample(naive["al_last_round_timestamp_seconds"]) == 1767225600.0  # a naive time is UTC


def test_ray_fallbacks_are_counted_only_when_a_cluster_is_configured():
    local = families({"state": "waiting-for-annotators", "engine": {"name": "local"}})
    assert "al_ray_fallbacks" not in local
    ray = families(
        {"state": "waiting-for-annotators", "engine": {"name": "ray", "fallbacks": 3, "error": "scoring: lost"}}
    )
    assert ray["al_ray_fallbacks"].type == "counter" and sample(ray["al_ray_fallbacks"]) == 3
