"""The deployment files are checked by the tools that would reject them: hadolint, the compose-spec schema,
systemd-analyze verify — plus the properties the README promises (no Docker engine here to run them)."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from daemon.config import Settings
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert found, f"{name} is needed for this test (dev extras / apt); see README 'Tests'"
    return found


def test_dockerfile_passes_hadolint_and_runs_as_a_non_root_user():
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    result = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"' in text  # PID 1 forwards signals and reaps
    assert 'VOLUME ["/var/lib/al-daemon"]' in text and "AL_STATE_DIR=/var/lib/al-daemon" in text
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cpu" in text


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    assert subprocess.run([tool("hadolint"), str(bad)], capture_output=True).returncode != 0


def test_compose_file_is_valid_and_health_gated():
    compose = DEPLOY / "docker" / "docker-compose.yml"
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load(compose.read_text())
    services = spec["services"]
    assert {"argilla", "worker", "elasticsearch", "redis", "postgres", "al-daemon"} <= set(services)
    assert services["argilla"]["image"] == services["worker"]["image"] == "argilla/argilla-server:v2.8.0"
    for name in ("argilla", "elasticsearch", "redis", "postgres"):
        assert "healthcheck" in services[name], name
    assert services["argilla"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    daemon = services["al-daemon"]
    assert daemon["depends_on"]["argilla"]["condition"] == "service_healthy"
    assert daemon["env_file"] == ".env" and "al-daemon-state:/var/lib/al-daemon" in daemon["volumes"]
    assert "AL_STATUS_TOKEN" in daemon["environment"]  # it binds 0.0.0.0 inside the container
    grace = int(daemon["stop_grace_period"].rstrip("s"))
    assert grace > Settings.model_fields["stop_timeout"].default


def test_compose_schema_check_would_catch_a_mistake(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: 3\n    depends_on: {y: {condition: whenever}}\n")
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)])
    assert result.returncode != 0


def unit_here(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's al-daemon (verify checks that it exists)."""
    text = text or (DEPLOY / "systemd" / "al-daemon.service").read_text()
    path = tmp_path / "al-daemon.service"
    path.write_text(text.replace("/opt/al-daemon/bin/al-daemon", str(BIN / "al-daemon")))
    return path


def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", str(unit_here(tmp_path))], capture_output=True, text=True
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((DEPLOY / "systemd" / "al-daemon.service").read_text())
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",  # bad input or a deleted dataset: no restart loop
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "al-daemon",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service["EnvironmentFile"] and int(service["WatchdogSec"]) > 0
    assert int(service["TimeoutStopSec"]) > Settings.model_fields["stop_timeout"].default


def test_systemd_verify_would_catch_a_mistake(tmp_path):
    broken = (DEPLOY / "systemd" / "al-daemon.service").read_text().replace("Type=notify", "Type=notifyy")
    result = subprocess.run([tool("systemd-analyze"), "verify", str(unit_here(tmp_path, broken))], capture_output=True)
    assert result.returncode != 0 or b"notifyy" in result.stderr


@pytest.mark.parametrize("name", ["docker/Dockerfile", "docker/docker-compose.yml", "systemd/al-daemon.service"])
def test_readme_documents_each_deploy_file(name):
    assert f"deploy/{name}" in (ROOT / "README.md").read_text()
