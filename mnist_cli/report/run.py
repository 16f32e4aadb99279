"""A run folder read back as one typed RunRecord: config, epoch metrics, layer health, per-step losses, result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_cli.config import Config, read_yaml, validate
from mnist_cli.errors import ConfigError, MnistError
from mnist_cli.record import EVENTS, LEGACY_LOGS, EpochMetrics, HealthRecord, RunResult, StepRecord, read_result, read_run_records
from mnist_cli.training.rundir import CONFIG, LOCK, RUN_FILES, RunDir


@dataclass(frozen=True)
class RunRecord:
    """Everything a run folder holds apart from the weights (those stay in `checkpoint`, loaded when needed)."""

    run_dir: RunDir
    config: Config
    metrics: list[EpochMetrics]  # one per validated epoch, never empty
    health: list[HealthRecord]  # [] when the run recorded none (train.health off, or a run from before it existed)
    steps: list[StepRecord]  # [] likewise
    checkpoint: Path | None  # the checkpoint asked for, else best.pt, else last.pt; None if neither exists
    result: RunResult | None = None  # result.json: None until the run finished, and for runs of earlier releases

    @property
    def name(self) -> str:
        """The run folder's name, which is how runs are told apart in a comparison."""
        return self.run_dir.path.name

    @property
    def epochs_done(self) -> int:
        return self.metrics[-1].epoch


def load_run(path: Path | str) -> RunRecord:
    """A run folder, or a checkpoint inside one, read back; MnistError when it is not a run with a finished epoch."""
    path = Path(path)
    if not path.exists():
        raise MnistError(f"no such run folder or checkpoint: {path}")
    checkpoint = None
    if path.is_file():
        if path.suffix != ".pt":
            raise MnistError(f"{path} is neither a run folder nor a checkpoint (.pt); give the folder `mnist train` wrote")
        checkpoint, path = path, path.parent
    run_dir = RunDir(path)
    present = {p.name for p in path.iterdir()} - {LOCK}
    if not present:
        raise MnistError(f"{path} is empty: no run has written here yet")
    if not present & set(RUN_FILES):
        where = f"{checkpoint} is a checkpoint outside a run folder" if checkpoint else f"{path} is not a run folder"
        raise MnistError(f"{where} (no {CONFIG}, {EVENTS} or last.pt in {path}); give the folder `mnist train --out` wrote")
    records = read_run_records(path)
    metrics = [r for r in records if isinstance(r, EpochMetrics)]
    log = EVENTS if run_dir.events.exists() else LEGACY_LOGS[0]
    if not metrics:
        again = "continue it with `mnist train --resume auto --out` that folder" if run_dir.last.exists() else "train it again"
        raise MnistError(f"{path}: the run stopped before finishing its first epoch ({log} holds no epochs); {again}")
    if not run_dir.config.exists():
        raise MnistError(f"{path} holds {log} but no {CONFIG}; it was not written by mnist train")
    try:
        config = validate(read_yaml(run_dir.config), str(run_dir.config))
    except ConfigError as e:
        raise MnistError(f"{run_dir.config} is not a config this version reads ({e})") from None
    if checkpoint is None:
        checkpoint = next((p for p in (run_dir.best, run_dir.last) if p.exists()), None)
    return RunRecord(
        run_dir=run_dir,
        config=config,
        metrics=metrics,
        health=[r for r in records if isinstance(r, HealthRecord)],
        steps=[r for r in records if isinstance(r, StepRecord)],
        checkpoint=checkpoint,
        result=read_result(path),
    )
