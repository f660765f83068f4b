"""/metrics parses with Prometheus' own parser and carries the run's numbers."""

from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics import render_metrics


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


def test_metrics_of_a_daemon_still_starting():
    parsed = families({"state": "starting", "round": 0, "labels": 0})
    assert sample(parsed["al_state"], state="starting") == 1
    assert parsed["al_test_accuracy_ratio"].samples == []
