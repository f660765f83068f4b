"""The deployment files are checked by the tools that would reject them: hadolint, the compose-spec schema,
systemd-analyze verify — plus the properties the README promises (no Docker engine here to run them)."""

import configparser
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
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


@pytest.mark.parametrize(
    "name",
    [
        "docker/Dockerfile",
        "docker/docker-compose.yml",
        "systemd/al-daemon.service",
        "prometheus/prometheus.yml",
        "prometheus/al-daemon-rules.yml",
        "prometheus/al-daemon-rules.test.yml",
        "grafana/al-daemon-dashboard.json",
    ],
)
def test_readme_documents_each_deploy_file(name):
    assert f"deploy/{name}" in (ROOT / "README.md").read_text()


# ---- the image: layer order, what it copies, what the build context leaves out --------------------------------------
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comment lines dropped, as Docker reads them."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        word, _, rest = (current + stripped).partition(" ")
        instructions.append((word.upper(), rest.strip()))
        current = ""
    return instructions


def copy_sources(arguments: str) -> list[str]:
    words = [w for w in shlex.split(arguments) if not w.startswith("--")]
    return words[:-1]


def test_dockerfile_installs_the_dependencies_before_the_code_changes():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    copy_daemon = next(
        i for i, (op, args) in enumerate(instructions) if op == "COPY" and "daemon" in copy_sources(args)
    )
    dependencies = next(
        i for i, (op, args) in enumerate(instructions) if op == "RUN" and "tomllib" in args and "pip install -r" in args
    )
    assert dependencies < copy_daemon  # a code change keeps the dependency layer cached
    copied_before = [s for op, args in instructions[:dependencies] if op == "COPY" for s in copy_sources(args)]
    assert copied_before == ["pyproject.toml"]  # nothing else can invalidate that layer
    installs = [args for op, args in instructions if op == "RUN" and re.search(r"pip install [^&]*\.(\s|$)", args)]
    assert len(installs) == 1 and "pip install --no-deps ." in installs[0]
    assert instructions.index(("RUN", installs[0])) > copy_daemon


def test_the_dependency_layer_reads_exactly_pyprojects_dependencies(tmp_path):
    """Runs the layer's own `python -c` (as the shell would unquote it) on a copy of pyproject.toml."""
    run = next(
        args for op, args in dockerfile_instructions(DOCKERFILE.read_text()) if op == "RUN" and "tomllib" in args
    )
    words = shlex.split(run)
    code = words[words.index("-c") + 1]
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.splitlines() == expected and "torch==2.13.0" in expected


def test_the_image_gets_no_data():
    for op, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if op in ("COPY", "ADD"):
            assert not any(s.rstrip("/").split("/")[0] == "data" for s in copy_sources(args)), args
    assert dockerignored(DOCKERIGNORE.read_text(), "data/trec6/train.jsonl")  # not even in the build context


# A model of Docker's .dockerignore matching (github.com/moby/patternmatcher): each line is filepath.Clean'ed, a
# leading "/" dropped, "!" re-includes; "*" and "?" never cross "/", "**" spans any number of directories (also
# none); a path is excluded when it or one of its parent directories matches, the last matching line deciding.
DOCKERIGNORE = ROOT / ".dockerignore"


def dockerignore_regex(pattern: str) -> re.Pattern:
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif c in "[]":
            out += c
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def dockerignored(text: str, path: str) -> bool:
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
        patterns.append((negate, dockerignore_regex(line)))
    parents = path.split("/")[:-1]
    candidates = [path] + ["/".join(parents[: i + 1]) for i in range(len(parents))]
    excluded = False
    for negate, regex in patterns:
        if negate != excluded:  # as moby: only a pattern that can change the answer is looked at
            continue
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_the_dockerignore_model_matches_dockers_rules():
    assert dockerignored("**/.env", ".env") and dockerignored("**/.env", "deploy/docker/.env")
    assert not dockerignored(".env", "deploy/docker/.env")  # a bare name matches at the root only
    assert dockerignored("deploy/docker/data", "deploy/docker/data/train.jsonl")  # a parent directory matches
    assert not dockerignored("docs/*.md", "docs/a/b.md") and dockerignored("docs/**/*.md", "docs/a/b.md")
    assert not dockerignored("*.md\n!README.md", "README.md") and dockerignored("*.md\n!README.md", "NOTES.md")
    assert dockerignored("/state", "state/run/state.json") and not dockerignored("state", "daemon/state.py")


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "deploy/docker/.env",
        "deploy/docker/.env.local",
        "deploy/docker/data/train.jsonl",
        "deploy/docker/data",
        "data/trec6/train.jsonl",
        "state/trec6-demo/state.json",
        ".stack/venv/bin/python",
        ".git/config",
        "tests/unit/test_config.py",
        "daemon/__pycache__/cli.cpython-311.pyc",
        "deploy/docker/secrets/token",
        "certs/server.key",
    ],
)
def test_dockerignore_keeps_secrets_and_data_out_of_the_build_context(path):
    assert dockerignored(DOCKERIGNORE.read_text(), path)


def test_dockerignore_keeps_what_the_image_copies():
    text = DOCKERIGNORE.read_text()
    sources = [
        s for op, args in dockerfile_instructions(DOCKERFILE.read_text()) if op == "COPY" for s in copy_sources(args)
    ]
    files = [p for s in sources for p in ([ROOT / s] if (ROOT / s).is_file() else (ROOT / s).rglob("*.py"))]
    assert len(files) > 10 and ROOT / "LICENSE" in files
    for file in files:
        assert not dockerignored(text, file.relative_to(ROOT).as_posix()), file


# ---- compose: the workspace, telemetry, the daemon's effective environment ---------------------------------------
COMPOSE = DEPLOY / "docker" / "docker-compose.yml"


def dotenv(text: str) -> dict[str, str]:
    """A compose env file (KEY=VALUE lines, # comments; a later line wins), enough for the files shipped here."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        current = env.get(name)
        if op in (":-", "-"):
            return current if (current if op == ":-" else current is not None) else arg
        if op in (":?", "?") and not (current if op == ":?" else current is not None):
            raise ValueError(f"compose refuses to start: {arg}")
        return current or ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}", substitute, value)


def compose_dotenv(**changes: str) -> dict[str, str]:
    """deploy/docker/.env as the README makes it (cat .env.example compose.env.example), secrets filled in."""
    text = (ROOT / ".env.example").read_text() + (DEPLOY / "docker" / "compose.env.example").read_text()
    text += "ARGILLA_AUTH_SECRET_KEY=" + "ab" * 32 + "\nAL_STATUS_TOKEN=" + "t" * 24 + "\n"
    text += "".join(f"{key}={value}\n" for key, value in changes.items())
    return dotenv(text)


def service_environment(service: dict, env: dict[str, str]) -> dict[str, str]:
    return {key: str(interpolate(value, env)) for key, value in (service.get("environment") or {}).items()}


def image_environment() -> dict[str, str]:
    values = {}
    for op, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if op == "ENV":
            values.update(word.split("=", 1) for word in shlex.split(args))
    return values


def daemon_environment(dotenv_values: dict[str, str]) -> dict[str, str]:
    """What the al-daemon container sees: the image's ENV < env_file < environment (compose's precedence)."""
    daemon = yaml.safe_load(COMPOSE.read_text())["services"]["al-daemon"]
    return image_environment() | dotenv_values | service_environment(daemon, dotenv_values)


@pytest.mark.parametrize("workspace", [None, "team-a"])
def test_compose_creates_the_workspace_the_daemon_uses(workspace):
    env = compose_dotenv(**({"AL_WORKSPACE": workspace} if workspace else {}))
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    argilla = service_environment(services["argilla"], env)
    # the argilla-server image's start script creates USERNAME (with PASSWORD, API_KEY) as owner of WORKSPACE
    assert argilla["USERNAME"] and len(argilla["PASSWORD"]) >= 8
    expected = workspace or Settings.model_fields["workspace"].default
    daemon = daemon_environment(env)
    assert argilla["WORKSPACE"] == daemon["AL_WORKSPACE"] == expected
    assert argilla["API_KEY"] == daemon["AL_ARGILLA_API_KEY"] and len(argilla["API_KEY"]) >= 8
    assert daemon["AL_ARGILLA_URL"] == "http://argilla:6900"


def test_compose_drops_the_deprecated_telemetry_switch():
    spec = yaml.safe_load(COMPOSE.read_text())
    for name, service in spec["services"].items():
        assert "ARGILLA_ENABLE_TELEMETRY" not in (service.get("environment") or {}), name
    for name in ("argilla", "worker"):  # Argilla 2.8 reads huggingface_hub's switch
        assert service_environment(spec["services"][name], compose_dotenv())["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_compose_daemon_logs_json_into_its_volume_whatever_env_file_says(monkeypatch):
    env = daemon_environment(compose_dotenv())
    assert env["AL_LOG_FORMAT"] == "json" and env["AL_STATE_DIR"] == "/var/lib/al-daemon"
    assert env["AL_POOL_FILE"] == "/data/train.jsonl"  # compose.env.example's line, after .env.example's
    assert env["AL_STATUS_HOST"] == "0.0.0.0" and len(env["AL_STATUS_TOKEN"]) >= 16
    # env_file beats the image's ENV, `environment:` beats env_file: a stray line in .env changes nothing
    assert daemon_environment(compose_dotenv(AL_LOG_FORMAT="text"))["AL_LOG_FORMAT"] == "json"
    assert (image_environment() | compose_dotenv(AL_LOG_FORMAT="text"))["AL_LOG_FORMAT"] == "text"
    for name in [n for n in os.environ if n.startswith("AL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("AL_"):
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.log_format.value == "json" and settings.state_dir == Path("/var/lib/al-daemon")


def test_compose_refuses_to_start_without_its_secrets():
    env = compose_dotenv()
    env.pop("AL_STATUS_TOKEN")
    with pytest.raises(ValueError, match="AL_STATUS_TOKEN"):
        daemon_environment(env)
