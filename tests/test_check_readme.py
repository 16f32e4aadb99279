"""docs/check_readme.py and docs/reference.py: every page's blocks parse, what varies by machine is not compared,
what is promised is, a drifted block is caught, and the reference pages cover every command and config key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))

import check_readme  # noqa: E402
import reference  # noqa: E402

PAGES = check_readme.pages([])


def test_every_console_block_of_the_readme_and_the_docs_parses_into_commands():
    assert REPO / "docs" / "zh" / "learning.md" in PAGES
    blocks = [b for page in PAGES for b in check_readme.parse(page.read_text(), page.name)]
    assert len(blocks) >= 30
    for block in blocks:
        assert block.steps, f"{block.page} line {block.line}: a console block without a `$ ` command"
        assert all(m in {"skip", "slow", "tty"} or m.startswith("tolerance=") for m in block.modes), block
        for step in block.steps:
            assert step.command.split()[0] in ("mnist", "make", "echo", "source", "touch", "rm", ".venv/bin/python"), (
                f"{block.page}: {step.command}"
            )


def test_the_chinese_pages_run_the_same_commands_as_the_english_ones():
    def commands(page: str) -> list[str]:
        return [s.command for b in check_readme.parse((REPO / "docs" / page).read_text()) for s in b.steps]

    assert commands("zh/learning.md") == commands("learning.md")
    assert set(commands("zh/getting-started.md")) <= set(commands("getting-started.md"))


def test_timings_are_not_compared_and_accuracies_are_within_the_tolerance():
    a = check_readme.normalize(["epoch 1/4  train_loss 0.8627  val_loss 0.2181  val_acc 95.72%  62.1s  885 samples/s  *best"])
    b = check_readme.normalize(["epoch 1/4  train_loss 0.8626  val_loss 0.2183  val_acc 95.74%  1.4s  39,592 samples/s  *best"])
    assert check_readme.matches(a, b)
    same = check_readme.same_line
    assert not same("val_acc 95.72%", "val_acc 96.12%")  # 0.4 points: more than 0.3
    assert same("val_acc 95.72%", "val_acc 96.12%", tolerance=1)
    assert not same("test loss 0.1471", "test loss 0.1671")  # 14%: more than 5%
    assert not same("669,706 parameters", "669,707 parameters")  # integers are exact
    assert not same("error: config: 2 problems", "error: config: 3 problems")
    assert same("test accuracy 92.37% (763 of 10,000 wrong)", "test accuracy 92.51% (749 of 10,000 wrong)")
    assert not same("test accuracy 92.37% (763 of 10,000 wrong)", "test accuracy 92.37% (863 of 10,000 wrong)")
    assert check_readme.matches(["a", " ...", "d"], ["a", "b", "c", "d"])
    assert not check_readme.matches(["a", "d"], ["a", "b", "d"])


def test_the_timing_columns_of_tab_separated_tables_are_not_compared():
    header = "run\tmodel.width\tparameters\tepochs\tbest val acc\ttest acc\ttrain s"
    page = check_readme.normalize([header, "width-16\t16\t12,730\t2\t92.20%\t92.37%\t0.4"])
    now = check_readme.normalize([header, "width-16\t16\t12,730\t2\t92.20%\t92.37%\t18.2"])
    assert check_readme.matches(page, now)
    drifted = check_readme.normalize([header, "width-16\t16\t12,731\t2\t92.20%\t92.37%\t0.4"])
    assert not check_readme.matches(page, drifted)


def run_checker(page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "docs" / "check_readme.py"), str(page), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_block_that_drifted_from_what_the_command_prints_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n"
        "$ mnist train -c configs --dry-run\n"
        "error: configs: no such file\n"  # what it said before: the checker must notice
        "$ echo $?\n"
        "2\n"
        "```\n"
    )
    r = run_checker(page)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "-error: configs: no such file" in r.stdout
    assert "+error: configs: is a folder; give a YAML file (such as configs/default.yaml)" in r.stdout
    page.write_text(page.read_text().replace("no such file", "is a folder; give a YAML file (such as configs/default.yaml)"))
    r = run_checker(page)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check-docs: the 2 commands of 1 blocks print what their pages say" in r.stdout


def test_the_commands_reference_shows_every_command_and_its_options():
    from mnist_cli.cli import app

    text = reference.commands()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"## `mnist {name}`" in text
    assert "| <code>-m, --checkpoint &lt;path&gt;</code> |" in text
    assert "<code>--split &lt;test&#124;val&gt;</code>" in text


def test_the_configs_reference_shows_every_key_with_its_default_and_meaning():
    from mnist_cli.config import Config
    from mnist_cli.yaml_files import key_paths

    text = reference.configs()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines() if line.startswith("| `")}
    assert len(key_paths(Config)) >= 35
    for key in key_paths(Config):
        assert not rows[f"`{key}`"].endswith("|  |"), f"{key} has no description in config.py"
    assert "| `train.schedule` | `onecycle` | `none`, `cosine`, `onecycle` |" in text
    assert "| `configs/default.yaml` |" in text


def test_record_writes_this_machines_outputs_into_the_page_keeping_its_cuts_and_timings(tmp_path):
    page = tmp_path / "page.md"
    text = "Lines a to e:\n\n```console\n$ printf 'a\\nb 91.0%%\\nc\\nd\\ne\\n'\na\nb 92.0%\n...\ne\n```\n\n"
    text += "```console\n$ printf 'x 1\\nthe 92.0%%\\nw\\n'\n...\nthe 90.0%\n...\n```\n\n"  # the run between two cuts
    page.write_text(text + "```console\n$ echo in 1.4s\nin 9.9s\n```\n")
    assert run_checker(page).returncode == 1  # 92.0% against 91.0%: more than the tolerance
    r = run_checker(page, "--record")
    assert r.returncode == 1 and "+b 91.0%" in r.stdout, r.stdout + r.stderr
    recorded = text.replace("b 92.0%", "b 91.0%").replace("the 90.0%", "the 92.0%")
    assert page.read_text() == recorded + "```console\n$ echo in 1.4s\nin 9.9s\n```\n"  # timings alone: left
    assert run_checker(page).returncode == 0
