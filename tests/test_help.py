"""`--help` of every command: flags shown as flags, arguments by name, fixed choices listed."""

from __future__ import annotations

import re

import pytest
import typer
from conftest import runner

from mnist_cli import __version__ as version
from mnist_cli.cli import app

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


def help_of(*command: str) -> str:
    r = runner.invoke(app, [*command, "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    return r.stdout


def option_rows(text: str) -> dict[str, str]:
    """{'--dry-run': '<rest of its row>'} from the Options panel's rows."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^│\s+(--[a-z][a-z0-9-]*)\s+(.*?)│?$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


FLAGS = {
    "": ["--version", "--install-completion", "--show-completion", "--help"],
    "train": ["--dry-run", "--overwrite", "--json", "--quiet", "--help"],
    "eval": ["--json", "--help"],
    "export": ["--json", "--help"],
    "predict": ["--show", "--json", "--help"],
    "report": ["--json", "--help"],
    "compare": ["--json", "--help"],
    "serve": ["--open", "--help"],
    "sweep": ["--json", "--quiet", "--help"],
}


def test_every_command_is_checked_and_listed():
    commands = sorted(typer.main.get_command(app).commands)
    assert sorted(c for c in FLAGS if c) == commands  # a new command needs its flags listed here
    assert all(f"│ {command} " in help_of() for command in commands), help_of()


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_help_shows_flags_as_flags_and_no_python_types(command):
    text = help_of(*[command] if command else [])
    assert "<bool>" not in text, text
    [usage] = [line for line in text.splitlines() if "Usage:" in line]
    assert "{" not in usage, usage  # typer 0.29 writes required arguments as {checkpoint}
    rows = option_rows(text)
    assert not [row for row in rows.values() if "list[" in row], text  # --set shows <key.path=value>, not list[str]
    for flag in FLAGS[command]:
        assert flag in rows, text
        assert not rows[flag].lstrip("-q ").startswith("<"), (flag, rows[flag])  # no value placeholder after a flag


@pytest.mark.parametrize(
    ("command", "option", "shown"),
    [
        ("train", "Usage:", "train [OPTIONS] [CONFIG]"),
        ("eval", "Usage:", "eval [OPTIONS] CHECKPOINT"),
        ("predict", "Usage:", "predict [OPTIONS] IMAGES..."),
        ("eval", "--split", "<test|val>"),
        ("predict", "--invert", "<auto|yes|no>"),
        ("train", "--device", "<auto|cpu|cuda|cuda:N|mps>"),
        ("eval", "--device", "<auto|cpu|cuda|cuda:N|mps>"),
        ("predict", "--device", "<auto|cpu|cuda|cuda:N|mps>"),
        ("train", "--set", "<key.path=value>"),
    ],
)
def test_usage_names_the_arguments_and_options_with_fixed_choices_list_them(command, option, shown):
    text = help_of(command)
    if option == "Usage:":
        assert shown in text, text
    else:
        assert option_rows(text)[option].startswith(shown), text


def test_flags_after_a_positional_config_stay_flags(tiny_config):
    r = runner.invoke(app, ["train", str(tiny_config), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["eval", "x.pt", "--split", "train"], ["Invalid value for '--split'", "is not one of"]),
        (["predict", "x.png", "-m", "x.pt", "--invert", "maybe"], ["Invalid value for '--invert'", "is not one of"]),
        (["predict", "-m", "x.pt"], ["Missing argument"]),
    ],
)
def test_a_value_outside_the_choices_or_a_missing_argument_is_a_usage_error_saying_so(args, needles):
    r = runner.invoke(app, args, env=WIDE)
    assert r.exit_code == 2, r.output
    assert all(needle in r.stderr for needle in needles), r.stderr


def test_version_names_the_package_and_its_version():
    r = runner.invoke(app, ["--version"])
    assert (r.exit_code, r.stdout) == (0, f"mnist-cli {version}\n"), r.output
