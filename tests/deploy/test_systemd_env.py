"""The environment systemd gives the daemon: the unit's Environment= lines plus /etc/al-daemon.env made from
`.env.example`, combined the way systemd does it (systemd.exec(5)):

- Environment= takes space-separated assignments, quoted as a whole or in part (C escapes allowed); it may be
  given several times, a later assignment of the same variable wins, and an empty Environment= resets the list;
- EnvironmentFile= files hold KEY=VALUE lines (`#`/`;` comments, quotes, backslash continuation); their settings
  override Environment= whatever the order of the two in the unit, and a later file (or line) wins.

The README's recipe copies `.env.example` to /etc/al-daemon.env, so a line set there used to beat the unit's
AL_LOG_FORMAT=json and AL_STATE_DIR=/var/lib/al-daemon: the file sets only what a run must look at now.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from daemon.config import TO_EDIT, LogFormat, Settings
from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "systemd" / "al-daemon.service"
ENV_FILE = "/etc/al-daemon.env"  # where the README's recipe installs .env (from .env.example)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "s": " "}

# lines the old .env.example set (they were copied into /etc/al-daemon.env and silently won over the unit)
OLD_ENV_EXAMPLE_LINES = """\
AL_ARGILLA_URL=http://127.0.0.1:6900
AL_ARGILLA_API_KEY=argilla.apikey
AL_POLL_INTERVAL=2.0
AL_STATE_DIR=state
AL_STATUS_HOST=127.0.0.1
AL_LOG_LEVEL=INFO
AL_LOG_FORMAT=text
"""


# ---- a model of systemd's parsing ------------------------------------------------------------------------------
def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file in order: comments, continuation lines and whitespace as systemd reads
    them (src/shared/conf-parser.c)."""
    entries, section, pending = [], None, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def specifiers(word: str) -> str:
    """Specifier expansion: only %% is modelled; any other specifier makes this model unreliable, so it fails."""
    unknown = re.findall(r"%[^%]", word.replace("%%", ""))
    assert not unknown, f"specifier {unknown} in Environment=: extend the model in this test"
    return word.replace("%%", "%")


def environment_words(value: str) -> list[str]:
    """Environment='s value split like systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)."""
    words, word, quote, in_word, i = [], [], None, False, 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            i += 1
            word.append(ESCAPES.get(value[i], value[i]))
            in_word = True
        elif quote:
            if c == quote:
                quote = None
            else:
                word.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c.isspace():
            if in_word:
                words.append("".join(word))
            word, in_word = [], False
        else:
            word.append(c)
            in_word = True
        i += 1
    assert quote is None, f"unbalanced quotes in Environment={value}"
    if in_word:
        words.append("".join(word))
    return [specifiers(w) for w in words]


def env_file_assignments(text: str) -> list[tuple[str, str]]:
    """KEY=VALUE pairs of an EnvironmentFile, as systemd's parse_env_file_internal() (src/basic/env-file.c) reads
    them: a state machine over the characters."""
    pairs: list[tuple[str, str]] = []
    state, key, value, trailing = "pre_key", "", "", 0

    def push():
        nonlocal key, value
        name = key.rstrip()
        if NAME.match(name):  # systemd ignores invalid names (with a warning)
            pairs.append((name, value[: len(value) - trailing] if trailing else value))
        key, value = "", ""

    for c in text + "\n":
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key = "key", c
        elif state == "key":
            if c == "\n":
                state, key = "pre_key", ""  # a key without '=' is dropped
            elif c == "=":
                state, trailing = "pre_value", 0
            else:
                key += c
        elif state == "pre_value":
            if c == "\n":
                state = "pre_key"
                push()
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif not c.isspace():
                state, value, trailing = "value", value + c, 0
        elif state == "value":
            if c == "\n":
                state = "pre_key"
                push()
            elif c == "\\":
                state, trailing = "value_escape", 0
            else:
                value += c
                trailing = trailing + 1 if c.isspace() else 0
        elif state == "value_escape":
            state = "value"
            if c != "\n":  # backslash-newline continues the value
                value += c
        elif state == "single":
            if c == "'":
                state, trailing = "pre_value", 0
            else:
                value += c
        elif state == "double":
            if c == '"':
                state, trailing = "pre_value", 0
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in '"\\`$':
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c == "\n":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    return pairs


def effective_environment(unit_text: str, files: dict[str, str]) -> dict[str, str]:
    """The service's environment: Environment= first, then every EnvironmentFile= on top (files by path)."""
    service = [(k, v) for section, k, v in unit_entries(unit_text) if section == "Service"]
    keys = {k for k, _ in service}
    assert not keys & {"PassEnvironment", "UnsetEnvironment", "ExecStartPre"}, "not modelled here: extend the test"
    assignments: list[str] = []
    env_files: list[str] = []
    for key, value in service:
        if key == "Environment":
            assignments = [] if not value else assignments + environment_words(value)
        elif key == "EnvironmentFile":
            env_files = [] if not value else env_files + [value]
    env: dict[str, str] = {}
    for word in assignments:
        name, sep, val = word.partition("=")
        if sep and NAME.match(name):  # systemd ignores an invalid assignment
            env[name] = val
    for path in env_files:
        optional = path.startswith("-")
        path = path.lstrip("-")
        if path not in files:
            assert optional, f"EnvironmentFile={path} is missing: systemd refuses to start the unit"
            continue
        env.update(env_file_assignments(files[path]))
    return env


# ---- the model itself ------------------------------------------------------------------------------------------
def test_environment_lines_split_quote_reset_and_later_wins():
    words = environment_words("""A=1 "B=two words" C='x "y"' D="e"f G=\\"q\\" H=50%%""")
    assert words == ["A=1", "B=two words", 'C=x "y"', "D=ef", 'G="q"', "H=50%"]
    unit = "[Service]\nEnvironment=A=1 B=1\nEnvironment=B=2\n[Install]\nEnvironment=X=ignored\n"
    assert effective_environment(unit, {}) == {"A": "1", "B": "2"}
    assert effective_environment(unit + "[Service]\nEnvironment=\nEnvironment=C=3 BAD-NAME=4\n", {}) == {"C": "3"}


def test_env_file_comments_quotes_and_continuations():
    text = (
        '# a comment\n; another\n  A = 1  \nB=\'single # not a comment\'\nC="dq \\"x\\" \\$y \\n"\n'
        "D=unquoted # kept: no inline comments\nE=con\\\ntinued\nno_equals_sign\nF=\nA=2\n"
    )
    assert env_file_assignments(text) == [
        ("A", "1"),
        ("B", "single # not a comment"),
        ("C", 'dq "x" $y \\n'),
        ("D", "unquoted # kept: no inline comments"),
        ("E", "continued"),
        ("F", ""),
        ("A", "2"),
    ]


@pytest.mark.parametrize("file_first", [True, False])
def test_environment_file_beats_environment_whatever_the_order(file_first):
    lines = ["EnvironmentFile=/e", "Environment=X=unit Y=unit"]
    unit = "[Service]\n" + "\n".join(lines if file_first else lines[::-1]) + "\n"
    assert effective_environment(unit, {"/e": "X=file\n"}) == {"X": "file", "Y": "unit"}
    assert effective_environment(unit.replace("=/e", "=-/missing"), {}) == {"X": "unit", "Y": "unit"}


# ---- the shipped unit with the shipped .env.example -----------------------------------------------------------
def settings_from(env: dict[str, str], monkeypatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("AL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_env_example_sets_only_what_a_run_must_look_at():
    text = (ROOT / ".env.example").read_text()
    assert {name for name, _ in env_file_assignments(text)} == {f"AL_{n.upper()}" for n in TO_EDIT}


def test_unit_with_env_from_env_example_logs_json_into_var_lib(monkeypatch):
    env = effective_environment(UNIT.read_text(), {ENV_FILE: (ROOT / ".env.example").read_text()})
    assert env["AL_LOG_FORMAT"] == "json" and env["AL_STATE_DIR"] == "/var/lib/al-daemon"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HOME"].startswith("/var/lib/al-daemon/")
    assert env["AL_ARGILLA_URL"] and env["AL_DATASET"]  # the file's own settings arrive too
    settings = settings_from(env, monkeypatch)
    assert settings.log_format is LogFormat.json
    assert settings.state_dir == Path("/var/lib/al-daemon")


def test_a_line_set_in_the_env_file_still_wins_over_the_unit(monkeypatch):
    """The precedence the recipe must respect: the old .env.example's lines override the unit (negative check)."""
    old = effective_environment(UNIT.read_text(), {ENV_FILE: OLD_ENV_EXAMPLE_LINES})
    assert old["AL_LOG_FORMAT"] == "text" and old["AL_STATE_DIR"] == "state"
    settings = settings_from(old, monkeypatch)
    assert settings.log_format is LogFormat.text and settings.state_dir == Path("state")
