"""Everything the terminal sees: progress, tables, plain lines when piped. Only this layer imports rich."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from mnist_cli.cli.app import printable, silence

if TYPE_CHECKING:
    from mnist_cli.inference.predict import Prediction
    from mnist_cli.record import EpochMetrics
    from mnist_cli.training.events import TrainResult


class ReaderSafeConsole(Console):
    """A console whose reader may go away (`| head -2`, a closed terminal): it then goes quiet instead of exiting.

    rich's own handler ends the program (exit 1), which would kill a training run over a lost progress line.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        silence(self.file)


def consoles() -> tuple[Console, Console]:
    """(stdout for results, stderr for progress and messages), made per call so tests capture them."""
    # No emoji codes: a path or class name like `:x:` is printed as written. A stream closed before the start (`>&-`)
    # is rich's null file; stdout's reader going away is rich's SystemExit(1), which `main` turns into exit 141.
    return Console(highlight=False, emoji=False), ReaderSafeConsole(stderr=True, highlight=False, emoji=False)


def say(console: Console, text: str) -> None:
    """Print `text` as written: no markup, and no line breaks added (a path stays whole for the reader's scripts)."""
    console.print(text, markup=False, soft_wrap=True)


def epoch_line(metrics: EpochMetrics, epochs: int) -> str:
    """One epoch's figures as a single line; `*best` marks a validation accuracy better than every earlier one."""
    val = (
        f"val_loss {metrics.val_loss:.4f}  val_acc {metrics.val_accuracy:.2%}"
        if metrics.val_accuracy is not None and metrics.val_loss is not None
        else "no validation split"
    )
    return (
        f"epoch {metrics.epoch}/{epochs}  train_loss {metrics.train_loss:.4f}  {val}  "
        f"{metrics.seconds:.1f}s  {metrics.samples_per_second:,.0f} samples/s"
        + ("  *best" if metrics.best and metrics.val_accuracy is not None else "")
    )


class BarReporter:
    """A progress display on `console`: a transient rich bar on a terminal (unless quiet), plain lines otherwise."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.rich = console.is_terminal and not quiet
        self.progress: Progress | None = None
        self.task = None

    def columns(self) -> list[Any]:
        raise NotImplementedError

    def __enter__(self) -> BarReporter:
        if self.rich:
            self.progress = Progress(*self.columns(), console=self.console, transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _print(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(Text(printable(text)), soft_wrap=True)


class TrainReporter(BarReporter):
    """Receives training events: a rich bar per epoch on a terminal, one plain line per epoch otherwise."""

    epochs = 0  # until the run starts

    def columns(self) -> list[Any]:
        return [
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:>9,.0f} samples/s"),
            TimeElapsedColumn(),
        ]

    def __call__(self, event: Any) -> None:
        from mnist_cli.record import EpochMetrics
        from mnist_cli.training.events import RunStarted, StepDone

        if self.quiet:
            return
        if isinstance(event, RunStarted):
            self.epochs = event.epochs
            self._print(
                f"training on {event.device}: {event.n_train:,} train / {event.n_val:,} val / {event.n_test:,} test images, "
                f"{event.parameters:,} parameters, {event.steps_per_epoch:,} step{'s' if event.steps_per_epoch != 1 else ''} "
                f"per epoch -> {event.out_dir}"
            )
            for note in event.notes:
                self._print(f"note: {note}")
        elif isinstance(event, StepDone) and self.progress is not None:
            step = event.record
            # The epoch is a field, not the task: several epochs share a bar when only some are logged.
            fields = {"epoch": f"{step.epoch}/{self.epochs}", "rate": event.samples_per_second}
            fields["loss"] = step.loss if step.loss is not None else float("nan")
            if self.task is None:
                self.task = self.progress.add_task("", total=event.steps, **fields)
            self.progress.update(self.task, completed=step.step, **fields)
        elif isinstance(event, EpochMetrics):
            if self.progress is not None and self.task is not None:
                self.progress.remove_task(self.task)
                self.task = None
            self._print(epoch_line(event, self.epochs))


def render_train_result(console: Console, r: TrainResult) -> None:
    """The end of a training run: where the model is and how good it is."""
    val = f"{r.val_accuracy:.2%}" if r.val_accuracy is not None else "n/a"
    text = (
        f"best epoch {r.best_epoch}: val accuracy {val}, test accuracy {r.test_accuracy:.2%} (test loss {r.test_loss:.4f})\n"
        f"trained {r.epochs} epoch{'s' if r.epochs != 1 else ''} in {r.train_seconds:.1f}s "
        f"({r.samples_per_second:,.0f} samples/s) on {r.device}\n"
        f"checkpoint: {printable(r.checkpoint)}"
    )
    console.print(Text(text), soft_wrap=True)


SHADES = " ░▒▓█"  # plain-text block art: 5 levels, each pixel two characters wide so digits keep their shape


def block_art(image: Any, color: bool) -> list[Text]:
    """uint8 (28, 28) -> lines of block art: half blocks in 256 grays on a terminal, shade characters otherwise."""
    pixels = image.tolist()
    if not color:
        # Framed, since the black background is blank characters.
        rows = ["│" + "".join(SHADES[min(v * len(SHADES) // 256, len(SHADES) - 1)] * 2 for v in row) + "│" for row in pixels]
        rule = "─" * (2 * len(pixels[0]))
        return [Text(line) for line in [f"┌{rule}┐", *rows, f"└{rule}┘"]]
    return [
        Text.assemble(*(("▀", f"rgb({a},{a},{a}) on rgb({b},{b},{b})") for a, b in zip(top, bottom, strict=True)))
        for top, bottom in zip(pixels[0::2], pixels[1::2], strict=True)
    ]


def top_k_text(p: Prediction, plain: bool = False) -> str:
    """The top-k classes: '7 98.2%  1 1.1%' for people, '7:0.982 1:0.011' in plain lines for scripts."""
    if plain:
        return " ".join(f"{printable(label)}:{prob:.3f}" for _, label, prob in p.top_k)
    return "  ".join(f"{printable(label)} {prob:.1%}" for _, label, prob in p.top_k)


def render_predictions(console: Console, results: list[Prediction], show: bool = False) -> None:
    """One row per image: the class, its probability and the runners-up; with `show`, the 28x28 input beside it."""
    # Paths and class names are Text, never markup; plain lines go to the file as they are (tabs kept for `cut`).
    flagged = any(p.uncertain for p in results)
    if show:
        color = console.is_terminal
        for p in results:
            summary = f"{printable(p.label)}  {p.probability:.1%}" + ("  uncertain" if p.uncertain else "")
            words = [Text(printable(p.path), style="bold" if color else ""), Text(f"{summary}  (top-k: {top_k_text(p)})")]
            for i, line in enumerate(block_art(p.input, color)):
                console.print(Text.assemble(line, "  ", words[i]) if i < len(words) else line, soft_wrap=True)
            console.print()
    elif not console.is_terminal:
        for p in results:
            line = f"{printable(p.path)}\t{printable(p.label)}\t{p.probability:.4f}\t{top_k_text(p, plain=True)}"
            console.file.write(line + ("\tuncertain" if p.uncertain else "") + "\n")
        console.file.flush()
    else:
        table = Table("image", Column("prediction", justify="center"), Column("probability", justify="right"), "top-k")
        if flagged:
            table.add_column("")
        for p in results:
            flag = [Text("uncertain" if p.uncertain else "", style="yellow")] if flagged else []
            cells = [Text(printable(p.path)), Text(printable(p.label), style="bold"), f"{p.probability:.1%}"]
            table.add_row(*cells, Text(top_k_text(p)), *flag)
        console.print(table)
