"""Run the commands of the README and of the docs pages, and compare what they print with the pages' own blocks.

    python docs/check_readme.py                 # README.md and every docs/**/*.md (needs the real MNIST)
    python docs/check_readme.py docs/learning.md --fast   # one page, leaving out the blocks that train
    python docs/check_readme.py --list          # the blocks and their commands, without running anything

A ```console block holds `$ command` lines, each followed by what it prints (stdout and stderr together). Each page's
commands run in order, in a scratch folder of its own that links the repository's configs/ and docs/, with `mnist`
(and `.venv/bin/mnist`) meaning this checkout's `python -m mnist_cli`; `$ echo $?` prints the exit code of the command
before it, and `$ source .venv/bin/activate` does nothing. A line `...` stands for any number of lines.

What is compared is what the docs promise, not what varies between machines (results repeat bit for bit only on the
same machine, thread count and torch build):
- timings and speeds (`1.4s`, `39,592 samples/s`, the `train s` and `seconds` columns) and free memory are not
  compared at all;
- accuracies (`97.54%`) must agree within TOLERANCE points (0.3 unless the block says otherwise), and so must the
  share behind `N of M wrong`;
- other decimals (losses, probabilities) within 5% (relative) or 0.002;
- everything else (words, messages, integers such as parameter counts and exit codes) exactly.

An HTML comment just before a block changes how it runs:

    <!-- check-readme: skip (why) -->    not run (it depends on timing, or takes minutes)
    <!-- check-readme: slow -->          trains a model: run, except with --fast
    <!-- check-readme: tty -->           run in a pseudo-terminal 120 columns wide, as a user at a terminal sees it
    <!-- check-readme: slow tolerance=1 -->   accuracies within 1 point (deep sigmoid nets vary more between CPUs)

Files the README's commands name but nobody ships (photo.png, bad/, evil.pt, cut.pt, flipped.pt, handwriting/) are
made when a command first names them. Exit code 0 when every checked block matches, 1 with a diff otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import gzip
import itertools
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"<!--\s*check-readme:\s*([\w .=]+?)\s*(\(|-->)")
TTY_COLUMNS = 120
COMMAND_TIMEOUT = 300  # seconds; the slowest checked command trains configs/default.yaml (~10 s on 2 cores)
TOLERANCE = 0.3  # accuracy points: what two CPUs or torch builds may differ by on these examples
RELATIVE = 0.05  # other decimals: losses, probabilities
ABSOLUTE = 0.002

# Timings and free memory vary with the machine and its load: masked on both sides, never compared.
MASKS = [
    (re.compile(r"(?<![\w.])\d+(\.\d+)?s\b"), "<T>s"),  # 1.4s, in 5.3s
    (re.compile(r"[\d,]+ samples/s"), "<N> samples/s"),
    (re.compile(r"[\d.]+ [KMGT]?B is available"), "<M> is available"),
]
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?%?(?![\w])")
WRONG = re.compile(r"([\d,]+) of ([\d,]+) wrong")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Step:
    command: str
    start: int = 0  # the page's line index (0-based) of the first line it prints
    expected: list[str] = field(default_factory=list)
    actual: list[str] | None = None  # what it printed, ANSI codes removed: for --record


@dataclass
class Block:
    line: int  # where it starts in its page, 1-based
    modes: set[str]  # empty, or skip, slow, tty, tolerance=X
    steps: list[Step]
    page: str = "README.md"

    @property
    def tolerance(self) -> float:
        return next((float(m.split("=")[1]) for m in self.modes if m.startswith("tolerance=")), TOLERANCE)


def parse(readme: str, page: str = "README.md") -> list[Block]:
    """The ```console blocks of one page, each split into commands and the lines they print."""
    blocks, lines, i, directive = [], readme.splitlines(), 0, set()
    while i < len(lines):
        text = lines[i]
        found = DIRECTIVE.search(text)
        if found:
            directive = set(found.group(1).split())
        elif text.startswith("```console"):
            start, steps, i = i + 1, [], i + 1
            while i < len(lines) and not lines[i].startswith("```"):
                if lines[i].startswith("$ "):
                    command = lines[i][2:]
                    while command.endswith("\\") and i + 1 < len(lines):
                        i += 1
                        command = command[:-1] + " " + lines[i].strip()
                    steps.append(Step(command, i + 1))
                elif steps:
                    steps[-1].expected.append(lines[i])
                i += 1
            blocks.append(Block(start, directive, steps, page))
            directive = set()
        elif text.strip() and not text.startswith("<!--"):
            directive = set()  # a directive applies only to the block right after it
        i += 1
    return blocks


TIMING_COLUMNS = {"train s", "seconds"}  # in the tab-separated tables of compare and sweep


def normalize(lines: list[str]) -> list[str]:
    out, timing_columns = [], set()
    for line in lines:
        line = ANSI.sub("", line).rstrip()
        for pattern, replacement in MASKS:
            line = pattern.sub(replacement, line)
        cells = line.split("\t")
        if len(cells) == 1:
            timing_columns = set()
        elif TIMING_COLUMNS & set(cells):  # a table's header: its timing columns are masked in the rows below
            timing_columns = {i for i, c in enumerate(cells) if c in TIMING_COLUMNS}
        elif timing_columns:
            line = "\t".join("<T>" if i in timing_columns else c for i, c in enumerate(cells))
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _value(token: str) -> float:
    return float(token.rstrip("%").replace(",", ""))


def same_line(expected: str, actual: str, tolerance: float = TOLERANCE) -> bool:
    """The same words and integers, accuracies within `tolerance` points, other decimals within 5% or 0.002."""
    if expected == actual:
        return True
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    wrong_e, wrong_a = WRONG.search(expected), WRONG.search(actual)
    wrong = {wrong_e.start(1)} if wrong_e and wrong_a else set()
    for e, a in zip(NUMBER.finditer(expected), NUMBER.finditer(actual), strict=True):
        x, y = _value(e.group()), _value(a.group())
        if e.start() in wrong:  # N of M wrong: compared as a share of M, like an accuracy
            x, y = 100 * x / _value(wrong_e.group(2)), 100 * y / _value(wrong_a.group(2))
            if abs(x - y) > tolerance:
                return False
        elif e.group().endswith("%"):
            if abs(x - y) > tolerance:
                return False
        elif "." in e.group() or "e" in e.group():
            if abs(x - y) > max(ABSOLUTE, RELATIVE * abs(x)):
                return False
        elif e.group() != a.group():
            return False
    return True


def matches(expected: list[str], actual: list[str], tolerance: float = TOLERANCE) -> bool:
    """Every expected line in order; a `...` line skips any number of actual lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(matches(rest, actual[k:], tolerance) for k in range(len(actual) + 1))
    return bool(actual) and same_line(head, actual[0], tolerance) and matches(rest, actual[1:], tolerance)


# --- the files the README's commands name ------------------------------------------------------------------------


def _photo(work: Path) -> None:
    shutil.copy(REPO / "docs" / "examples" / "seven.png", work / "photo.png")


def _bad_data(work: Path) -> None:
    """The real MNIST unpacked, its training images cut to 200,000 bytes."""
    real = Path(os.environ.get("MNIST_DATA_DIR") or "data") / "MNIST" / "raw"
    raw = work / "bad" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        data = gzip.decompress((real / f"{name}.gz").read_bytes())
        (raw / name).write_bytes(data[:200_000] if name.startswith("train-images") else data)


def _checkpoint(work: Path) -> Path:
    """A best.pt of this page's runs, else one trained now from configs/tiny.yaml."""
    found = sorted(work.glob("checkpoints/**/best.pt"))
    if not found:
        run_piped("mnist train configs/tiny.yaml -q --out checkpoints/fixture", work)
        found = [work / "checkpoints" / "fixture" / "best.pt"]
    return found[0]


def _evil(work: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    import torch

    torch.save({"model_state": Evil()}, work / "evil.pt")


def _cut(work: Path) -> None:
    data = _checkpoint(work).read_bytes()
    (work / "cut.pt").write_bytes(data[: len(data) // 2])


def _flipped(work: Path) -> None:
    """One bit of one weight flipped, inside the zip's stored tensor data (its CRC is not checked by torch)."""
    import zipfile

    source = _checkpoint(work)
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)  # the largest tensor's bytes
    # The local header is 30 bytes plus the name and extra field; the data follows, stored uncompressed.
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x40
    (work / "flipped.pt").write_bytes(bytes(data))


def _handwriting(work: Path) -> None:
    """docs/handwriting.md's folders of other writers' digits, as its ```sh block makes them."""
    script = REPO / "docs" / "make_handwriting_folders.py"
    subprocess.run([sys.executable, str(script), str(work / "handwriting")], check=True, capture_output=True)


FIXTURES: dict[str, Callable[[Path], None]] = {
    "photo.png": _photo,
    "handwriting": _handwriting,
    "bad": _bad_data,
    "evil.pt": _evil,
    "cut.pt": _cut,
    "flipped.pt": _flipped,
}


# --- running ------------------------------------------------------------------------------------------------------


def shell_command(command: str) -> str:
    """The README's command as bash runs it here: `make train` is what the Makefile runs, `mnist` is this checkout."""
    command = command.strip()
    if command == "source .venv/bin/activate":  # each command runs in its own shell, where `mnist` is already defined
        return "true"
    command = re.sub(r"(^|[;&|] *)\.venv/bin/mnist\b", r"\1mnist", command)
    if command == "make train":
        # make echoes the recipe line before running it, and the README shows that line too.
        recipe = "mnist train --config configs/default.yaml --overwrite"
        command = f"echo '.venv/bin/{recipe}'; {recipe}"
    if command.startswith(".venv/bin/python "):  # the scratch folder has no .venv: the checkout's Python stands in
        command = '"$MNIST_PYTHON" ' + command.removeprefix(".venv/bin/python ")
    return 'mnist() { "$MNIST_PYTHON" -m mnist_cli "$@"; }; ' + command


def environment() -> dict[str, str]:
    # Under `make check-readme`, make's own variables would make the README's `make train` a sub-make, which prints
    # "Entering directory" lines a user's `make train` does not: a user's shell has none of them.
    dropped = {"MNIST_CHECKPOINT_DIR", "MNIST_CACHE_DIR", "COLUMNS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {
        **env,
        "MNIST_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        "NO_COLOR": "1",
    }


def run_piped(command: str, cwd: Path) -> tuple[int, str]:
    r = subprocess.run(
        ["bash", "-c", shell_command(command)],
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=COMMAND_TIMEOUT,
    )
    return r.returncode, r.stdout.decode()


def run_in_tty(command: str, cwd: Path) -> tuple[int, str]:
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, TTY_COLUMNS, 0, 0))
    proc = subprocess.Popen(
        ["bash", "-c", shell_command(command)],
        cwd=cwd,
        env={**environment(), "TERM": "xterm"},
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return proc.wait(timeout=COMMAND_TIMEOUT), b"".join(chunks).decode().replace("\r\n", "\n")


def make_fixtures(command: str, work: Path) -> None:
    words = set(re.split(r"[\s=/]+", command))
    for name, make in FIXTURES.items():
        if name in words and not (work / name).exists():
            make(work)


def checked(blocks: list[Block], fast: bool) -> list[Block]:
    return [b for b in blocks if "skip" not in b.modes and not (fast and "slow" in b.modes)]


def check(blocks: list[Block], work: Path) -> list[str]:
    """Run one page's blocks; a report per step whose output differs."""
    failures, last_code = [], 0
    for block in blocks:
        for step in block.steps:
            command = step.command.split("  #")[0]
            if command.strip() == "echo $?":
                code, output = 0, f"{last_code}\n"
            else:
                make_fixtures(command, work)
                print(f"{block.page} line {block.line}: $ {command}", file=sys.stderr, flush=True)
                code, output = (run_in_tty if "tty" in block.modes else run_piped)(command, work)
                last_code = code
            expected, actual = normalize(step.expected), normalize(output.splitlines())
            if not matches(expected, actual, 0.0):  # more than timings or a loss's last digits changed
                step.actual = [ANSI.sub("", line).rstrip() for line in output.splitlines()]
            if not matches(expected, actual, block.tolerance):
                diff = "\n".join(difflib.unified_diff(expected, actual, block.page, "now", lineterm=""))
                failures.append(f"{block.page} line {block.line}: $ {command}\n{diff}")
    return failures


def record(path: Path, blocks: list[Block]) -> None:
    """Write what the commands printed into the page where it differs beyond timings. Where the page cuts lines with
    `...`, each run of lines it shows is replaced by the printed lines of the same shape (the same but for numbers),
    or left as it is when none are found: the checker then shows what to write by hand."""
    lines = path.read_text(encoding="utf-8").split("\n")
    for step in sorted((s for b in blocks for s in b.steps if s.actual is not None), key=lambda s: -s.start):
        new = step.actual
        while new and not new[-1]:
            new = new[:-1]
        if "..." in step.expected:
            new = realign(step.expected, new)
        lines[step.start : step.start + len(step.expected)] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def shape(line: str) -> str:
    """A line with its numbers, spaces and rules masked: what stays when another machine prints other results (a
    table's columns may be wider)."""
    return re.sub(r"[\s━─═]+", "", NUMBER.sub("#", normalize([line])[0])) if line.strip() else ""


def realign(expected: list[str], actual: list[str]) -> list[str]:
    """The page's lines, each run of them between `...` lines replaced by the first printed run of the same shape."""
    out, at = [], 0
    for cut, group in itertools.groupby(expected, lambda line: line == "..."):
        run = list(group)
        shapes = [shape(line) for line in run]
        starts = [j for j in range(at, len(actual) - len(run) + 1) if [shape(a) for a in actual[j : j + len(run)]] == shapes]
        if cut or not starts:
            out += run
        else:
            out, at = out + actual[starts[0] : starts[0] + len(run)], starts[0] + len(run)
    return out


def pages(args: list[Path]) -> list[Path]:
    """The pages named, or README.md and every Markdown page under docs/ (the generated reference has no blocks)."""
    return args or [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def check_page(path: Path, fast: bool, keep: bool, rewrite: bool = False) -> tuple[list[Block], list[str]]:
    page = str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)
    blocks = checked(parse(path.read_text(encoding="utf-8"), page), fast)
    if not blocks:
        return [], []
    work = Path(tempfile.mkdtemp(prefix="check-docs-"))
    try:
        for name in ("configs", "docs"):
            (work / name).symlink_to(REPO / name)
        failures = check(blocks, work)
        if rewrite:
            record(path, blocks)
        return blocks, failures
    finally:
        if keep:
            print(f"scratch folder of {page} kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: README.md and docs/**/*.md)")
    parser.add_argument("--readme", type=Path, action="append", default=[], help="a page to check (the same as naming it)")
    parser.add_argument("--list", action="store_true", help="list the blocks and their commands; run nothing")
    parser.add_argument("--fast", action="store_true", help="leave out the blocks marked slow (those that train)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders and print where they are")
    parser.add_argument("--record", action="store_true", help="write this machine's outputs into the pages (then read the diff)")
    args = parser.parse_args()
    paths = pages([*args.pages, *args.readme])
    if args.list:
        for path in paths:
            for block in parse(path.read_text(encoding="utf-8"), path.name):
                for step in block.steps:
                    print(f"{path.name}:{block.line:<5} {' '.join(sorted(block.modes)) or 'run':8}  $ {step.command}")
        return 0
    blocks, failures = [], []
    for path in paths:
        page_blocks, page_failures = check_page(path, args.fast, args.keep, args.record)
        blocks += page_blocks
        failures += page_failures
    steps = sum(len(b.steps) for b in blocks)
    if failures:
        print("\n\n".join(failures))
        print(f"\ncheck-docs: {len(failures)} of {steps} commands print something other than their page says")
        return 1
    print(f"check-docs: the {steps} commands of {len(blocks)} blocks print what their pages say")
    return 0


if __name__ == "__main__":
    sys.exit(main())
