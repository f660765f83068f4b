import pytest
from pydantic import ValidationError

from daemon.config import ModelKind, Settings, StoppingRule


def test_defaults_and_masked_key(monkeypatch):
    monkeypatch.setenv("AL_ARGILLA_API_KEY", "secret-key-123")
    settings = Settings(_env_file=None)
    assert settings.batch_size == 20
    assert settings.model is ModelKind.embeddings
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
        ({"stopping_rule": "max_rounds"}, "needs max_rounds"),
        ({"model": "gpt"}, "embeddings"),
    ],
)
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **kwargs)


def test_cli_flags_override_environment(monkeypatch):
    monkeypatch.setenv("AL_BATCH_SIZE", "5")
    settings = Settings(_env_file=None, _cli_parse_args=["--batch-size", "7", "--stopping-rule", "never"])
    assert settings.batch_size == 7
    assert settings.stopping_rule is StoppingRule.never


def test_cli_reports_invalid_settings_without_traceback(capsys):
    from daemon.cli import main

    assert main(["run", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "Traceback" not in err


def test_env_example_lists_every_setting():
    from tests.conftest import ROOT

    text = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"AL_{name.upper()}=" in text, f"AL_{name.upper()} missing from .env.example"


def test_readme_documents_every_setting():
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`AL_{name.upper()}`" in text, f"AL_{name.upper()} missing from the README's settings table"
