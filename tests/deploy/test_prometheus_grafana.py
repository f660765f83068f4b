"""The Prometheus alert rules and the Grafana dashboard in deploy/: the rules pass the real promtool (`check rules`,
and `test rules` with a unit-test file that makes each alert fire on synthetic series and stay quiet on healthy
ones), and every metric the rules and the dashboard name is one the daemon's /metrics really serves.

promtool comes from Debian's `prometheus` package (.ci/run installs it). Without it the promtool tests skip
locally, but fail when the CI environment variable is set: CI must run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from daemon.metrics import render_metrics
from tests.conftest import ROOT
from tests.unit.conftest import label_batch, make_daemon

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "al-daemon-rules.yml"
RULE_TESTS = PROMETHEUS / "al-daemon-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "al-daemon-dashboard.json"
# series Prometheus itself makes for every target (not in any /metrics output)
PROMETHEUS_OWN = {"up"}
# Grafana's built-in variables, replaced by a plausible value before the PromQL is parsed
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__interval": "1m", "$__range": "1h"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if in_ci():
        pytest.fail("promtool is missing (Debian package `prometheus`): CI must check and test the alert rules")
    pytest.skip("promtool is missing: apt-get install prometheus (CI installs it and then fails without it)")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


# ---- promtool --------------------------------------------------------------------------------------------------
def test_rules_pass_promtool_check_and_their_unit_tests():
    tool = promtool()
    checked = run(tool, "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout
    tested = run(tool, "test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, list[list]] = {}
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    for rule in alerts():
        seen = cases.get(rule["alert"], [])
        assert any(seen), f"{rule['alert']}: no test case where it fires"
        assert any(not expected for expected in seen), f"{rule['alert']}: no test case where it stays quiet"


def test_the_unit_tests_fail_when_an_alert_cannot_fire(tmp_path):
    """Each alert's firing case really depends on its expression: neutered, promtool's tests fail."""
    tool = promtool()
    runs = {}
    for name in [rule["alert"] for rule in alerts()]:
        spec = yaml.safe_load(RULES.read_text())
        for group in spec["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    rule["expr"] = "vector(1) == 2"
        folder = tmp_path / name
        folder.mkdir()
        (folder / RULES.name).write_text(yaml.safe_dump(spec))
        shutil.copy(RULE_TESTS, folder / RULE_TESTS.name)
        command = [tool, "test", "rules", str(folder / RULE_TESTS.name)]
        runs[name] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, process in runs.items():
        output = process.communicate()[0]
        assert process.returncode != 0 and name in output, name


def test_promtool_would_catch_a_broken_rule(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: al_state{state=degraded} ==\n")
    assert run(promtool(), "check", "rules", bad).returncode != 0


def test_example_prometheus_config_is_valid(tmp_path):
    """deploy/prometheus/prometheus.yml (scrape job al-daemon, the rule file) passes `promtool check config`; the
    token file it names must exist for that, so a copy points at a temporary one."""
    tool = promtool()
    token = tmp_path / "al-daemon.token"
    token.write_text("x" * 32)
    config = (PROMETHEUS / "prometheus.yml").read_text()
    assert "/etc/prometheus/al-daemon.token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/al-daemon.token", str(token)))
    shutil.copy(RULES, tmp_path / RULES.name)
    result = run(tool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = [job["job_name"] for job in yaml.safe_load(config)["scrape_configs"]]
    assert jobs == ["al-daemon"] and all(
        'job="al-daemon"' in rule["expr"] for rule in alerts() if "up{" in rule["expr"]
    )


# ---- metric names ----------------------------------------------------------------------------------------------
def selectors(expr: str) -> list:
    """Every series selector of a PromQL expression (Grafana's variables filled in), via promql-parser's AST."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: list = []
    promql_parser.walk(
        promql_parser.parse(expr),
        pre_visit=lambda node: found.append(node) if isinstance(node, promql_parser.VectorSelector) else None,
    )
    return found


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects, by name or by a __name__ matcher."""
    names: set[str] = set()
    for selector in selectors(expr):
        if selector.name:
            names.add(selector.name)
        for matcher in selector.matchers.matchers:
            if matcher.name == "__name__":
                assert matcher.op == promql_parser.MatchOp.Equal, f"a __name__ pattern hides its metrics: {expr}"
                names.add(matcher.value)
    return names


def exposition_names(text: str) -> set[str]:
    """The series names a scrape of this text stores: every sample's, and for families without a sample now, the
    names their TYPE line promises (histograms: _bucket, _sum, _count)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group())
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            queries.append(inner.group(1) if inner else query)
    return queries


def test_the_name_extraction_sees_every_selector():
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="1"}[$__rate_interval]))) / on() b or {__name__="c"}'
    assert metric_names(expr) == {"a_bucket", "b", "c"}
    assert metric_names("time() - d > 600 unless on (instance) last_over_time(e[7d]) == 1") == {"d", "e"}
    assert exposition_names("# TYPE h histogram\n# TYPE g gauge\nc_total 1.0\n") == {
        "h_bucket",
        "h_sum",
        "h_count",
        "g",
        "c_total",
    }


def test_rules_and_dashboard_name_only_metrics_the_daemon_serves(world):
    """/metrics of a real (fake-Argilla) run, mid-run and stopped, against every name the rules and panels use."""
    daemon = make_daemon(world, max_rounds=3)
    daemon.start()
    served: set[str] = set()
    for batch_id in range(3):
        served |= exposition_names(render_metrics(daemon.status()).decode())
        label_batch(world, batch_id)
        daemon.tick()
    status = daemon.status()
    assert status["state"] == "stopped" and status["last_round"] and status["argilla_last_contact"]
    served |= exposition_names(render_metrics(status).decode())
    assert {"process_cpu_seconds_total", "python_gc_collections_total", "al_round_phase_duration_seconds_bucket"} <= (
        served
    )

    in_rules = {name for rule in alerts() for name in metric_names(rule["expr"])}
    in_dashboard = {name for query in dashboard_queries() for name in metric_names(query)}
    assert in_rules and in_dashboard
    assert in_rules - served == PROMETHEUS_OWN  # `up` is Prometheus' own, for the down/missing alerts
    assert in_dashboard - served == set()
    for name in ("al_argilla_last_contact_timestamp_seconds", "al_state", "al_batch_created_timestamp_seconds"):
        assert name in in_rules, name


# ---- the dashboard ---------------------------------------------------------------------------------------------
def overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def test_dashboard_uses_its_datasource_variable_and_covers_the_run():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for i, panel in enumerate(panels):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for other in panels[i + 1 :]:
            assert not overlaps(grid, other["gridPos"]), (panel["title"], other["title"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            for selector in selectors(target["expr"]):  # this dashboard's daemon, not every daemon in Prometheus
                matchers = {(m.name, m.value) for m in selector.matchers.matchers}
                assert {("job", "$job"), ("instance", "$instance")} <= matchers, (panel["title"], target["expr"])
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in (
        "state",
        "labels and rounds",
        "accuracy",
        "stopping signals",
        "phase duration",
        "argilla request errors",
    ):
        assert topic in titles, topic
    queries = " ".join(dashboard_queries())
    for needed in (
        "histogram_quantile",
        "al_stopping_threshold",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
    ):
        assert needed in queries, needed
