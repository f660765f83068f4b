import pytest
from pydantic import ValidationError

from daemon.config import Criterion, ModelKind, Settings, StopMode


def test_defaults_and_masked_key(monkeypatch):
    monkeypatch.setenv("AL_ARGILLA_API_KEY", "secret-key-123")
    settings = Settings(_env_file=None)
    assert settings.batch_size == 20
    assert settings.model is ModelKind.hybrid
    assert settings.argilla_api_key.get_secret_value() == "secret-key-123"
    assert "secret-key-123" not in str(settings.public()) and "secret-key-123" not in repr(settings)


def test_labels_from_comma_list(monkeypatch):
    monkeypatch.setenv("AL_LABELS", "A, B,C")
    assert Settings(_env_file=None).labels == ["A", "B", "C"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": ["A"]}, "at least two labels"),
        ({"labels": ["A", "A"]}, "duplicates"),
        ({"argilla_url": "localhost:6900"}, "http://"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"stop_criteria": ["kappa"]}, "kappa_average"),
        ({"status_host": "0.0.0.0"}, "AL_STATUS_TOKEN"),
        ({"status_host": "0.0.0.0", "status_token": "short"}, "at least 16"),
        ({"model": "gpt"}, "embeddings"),
        ({"query_strategy": "cvirs", "task": "single"}, "needs a multi-label task"),
        ({"task": "multi", "model": "setfit"}, "single-label only here"),
        ({"task": "multi", "activelab": True, "training": "inline"}, "cleanlab's multiannotator"),
        ({"task": "multi", "query_strategy": "bald", "model": "setfit"}, "single-label only here"),
        ({"task": "single", "none_label": "none"}, "none_label is for multi-label tasks"),
        ({"task": "multi", "none_label": "a", "labels": "a,b"}, "also one of AL_LABELS"),
        ({"threshold": 1.0}, "threshold"),
        ({"model": "transformer", "ray_fine_tune": True}, "ray_fine_tune=true needs a cluster to fine-tune on"),
        (
            {"model": "hybrid", "ray_fine_tune": True, "ray_address": "ray://head:10001"},
            "fine-tunes AL_MODEL=transformer or setfit on Ray; model hybrid trains",
        ),
    ],
)
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **kwargs)


def test_cli_flags_override_environment(monkeypatch):
    monkeypatch.setenv("AL_BATCH_SIZE", "5")
    settings = Settings(_env_file=None, _cli_parse_args=["--batch-size", "7", "--stop-criteria", "never"])
    assert settings.batch_size == 7
    assert settings.stop_criteria == []


def test_stop_criteria_from_comma_list(monkeypatch):
    monkeypatch.setenv("AL_STOP_CRITERIA", "kappa_average, overall_uncertainty,kappa_average")
    monkeypatch.setenv("AL_STOP_MODE", "all")
    settings = Settings(_env_file=None)
    assert settings.stop_criteria == [Criterion.kappa_average, Criterion.overall_uncertainty]
    assert settings.stop_mode is StopMode.all


def test_token_allows_a_public_bind_and_is_masked():
    settings = Settings(_env_file=None, status_host="0.0.0.0", status_token="a-long-enough-token")
    assert "a-long-enough-token" not in str(settings.public())
    assert Settings(_env_file=None, status_host="::1").status_token is None  # loopback needs none


def test_cli_reports_invalid_settings_without_traceback(capsys):
    from daemon.cli import main

    assert main(["run", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "Traceback" not in err


def test_env_example_is_generated_from_the_settings():
    from daemon.config import env_example
    from tests.conftest import ROOT

    text = (ROOT / ".env.example").read_text()
    assert text == env_example(), (
        "regenerate: python -c 'from daemon.config import env_example as e; print(e(), end=\"\")' > .env.example"
    )
    for name in Settings.model_fields:
        assert f"AL_{name.upper()}=" in text


def test_readme_settings_table_is_generated_from_the_settings():
    from daemon.config import settings_table
    from tests.conftest import ROOT

    assert settings_table() in (ROOT / "README.md").read_text(), "paste daemon.config.settings_table() into the README"


def test_env_example_parses_to_the_defaults(tmp_path):
    from daemon.config import env_example

    env = tmp_path / ".env"
    env.write_text(env_example())
    assert Settings(_env_file=env) == Settings(_env_file=None)


def test_empty_values_unset_optional_settings(monkeypatch):
    monkeypatch.setenv("AL_TEST_FILE", "")
    monkeypatch.setenv("AL_MAX_ROUNDS", " ")
    settings = Settings(_env_file=None)
    assert settings.test_file is None and settings.max_rounds is None


def test_demo_help_says_that_run_flags_are_accepted(capsys):
    from daemon.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "Every flag of `al-daemon run` is accepted" in " ".join(capsys.readouterr().out.split())
