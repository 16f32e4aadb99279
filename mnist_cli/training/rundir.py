"""A run folder: its files' names, the lock that keeps two runs apart, and what may be replaced or removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mnist_cli.disk import TEMP_SUFFIX, atomic_write, probe_writable
from mnist_cli.errors import MnistError
from mnist_cli.training import health
from mnist_cli.training.health import HealthRecord, StepRecord
from mnist_cli.training.metrics import EpochMetrics, from_jsonl, to_jsonl

BEST, LAST, CONFIG, METRICS, LOCK = "best.pt", "last.pt", "config.yaml", "metrics.jsonl", ".lock"
HEALTH, STEPS = "health.jsonl", "steps.jsonl"
# Every file a run writes (besides the lock), in one place: a feature that adds a file to the run folder adds it here,
# so `--overwrite` removes it with the rest and a killed run's temporary copies of it are cleaned up.
RUN_FILES = (BEST, LAST, CONFIG, METRICS, HEALTH, STEPS)
CHECKPOINT_FILES = (BEST, LAST)


@dataclass(frozen=True)
class RunDir:
    """The folder `mnist train` writes: best.pt, last.pt, config.yaml, metrics.jsonl, health.jsonl, steps.jsonl, .lock."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def health(self) -> Path:
        return self.path / HEALTH

    @property
    def steps(self) -> Path:
        return self.path / STEPS

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    def holds_run(self) -> bool:
        """True if a run has saved a resumable state here."""
        return self.last.exists()

    def prepare(self, create: bool = True) -> None:
        """Create the folder and prove a file can be written there (root ignores permission bits).

        With `create` false (a dry run) nothing is made: the nearest existing folder on the way must take a file.
        """
        try:
            if create:
                self.path.mkdir(parents=True, exist_ok=True)
            probe_writable(self.path)
        except (OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise MnistError(f"output directory {self.path} cannot be created or written to ({reason})") from None

    def refuse_to_replace(self) -> None:
        """A new run must not silently replace another run's checkpoints."""
        if self.holds_run():
            raise MnistError(
                f"{self.path} already holds a run ({LAST}); continue it with --resume auto, "
                "replace it with --overwrite, or choose another --out"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold .lock while a run writes here; under it, temporary files left by a killed run are removed."""
        try:
            import fcntl
        except ImportError:  # not on POSIX: no lock
            yield
            return
        handle = open(self.lock_file, "a+b")  # noqa: SIM115 - held open for the whole run on purpose
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise MnistError(f"another `mnist train` is writing to {self.path}; wait for it or use another --out") from None
            self.remove_stale_temps()
            yield
        finally:
            handle.close()

    def remove_previous_run(self) -> None:
        """Remove every file an earlier run left here (RUN_FILES), before a new run (`--overwrite`) saves anything.

        A new run interrupted early must not leave the old run's best.pt or metrics.jsonl beside its own files, where
        `eval` and `predict` would take them for the new run's. last.pt goes last: while any old file is left, the
        folder still reads as holding a run and a new run without --overwrite is refused.
        """
        for name in sorted(RUN_FILES, key=lambda n: n == LAST):
            try:
                (self.path / name).unlink(missing_ok=True)
            except IsADirectoryError:
                raise MnistError(f"{self.path / name} is a folder; a run folder's {name} must be a file") from None
            except OSError as e:
                raise MnistError(f"cannot remove the earlier run's {self.path / name} ({e.strerror})") from None

    def remove_stale_temps(self) -> None:
        """Temporary files of our own saves (`.<run file>.*.tmp`), left by a killed run; never anyone else's."""
        for name in RUN_FILES:
            for stale in self.path.glob(f".{name}.*{TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)

    def read_metrics(self) -> list[EpochMetrics]:
        """The finished epochs recorded in metrics.jsonl ([] when there is none yet)."""
        if not self.metrics.exists():
            return []
        try:
            return from_jsonl(self.metrics.read_text())
        except (ValueError, TypeError) as e:
            raise MnistError(f"{self.metrics} is not a metrics file written by mnist train ({e})") from None

    def write_metrics(self, rows: list[EpochMetrics]) -> None:
        """Rewrite metrics.jsonl with `rows`, atomically."""
        text = to_jsonl(rows)
        atomic_write(self.metrics, lambda f: f.write(text.encode()))

    def read_health(self) -> list[HealthRecord]:
        """The layer-health probes recorded in health.jsonl ([] when there is none: an old run, or train.health off)."""
        return self._read_log(self.health, HealthRecord, "health")

    def read_steps(self) -> list[StepRecord]:
        """The per-step training losses recorded in steps.jsonl ([] when there is none)."""
        return self._read_log(self.steps, StepRecord, "steps")

    def append_health(self, record: HealthRecord) -> None:
        self._append(self.health, health.to_jsonl([record]))

    def append_step(self, record: StepRecord) -> None:
        self._append(self.steps, health.to_jsonl([record]))

    def cut_logs(self, global_step: int) -> None:
        """Keep only the health and step rows up to `global_step` (a resumed run's position; 0: a new run), atomically.

        Rows past it were written after the last.pt the run resumes from, and the resumed run writes them again.
        """
        for path, kind in ((self.health, HealthRecord), (self.steps, StepRecord)):
            if global_step == 0 or not path.exists():
                path.unlink(missing_ok=True)
                continue
            rows = [row for row in self._read_log(path, kind, path.stem) if row.global_step <= global_step]
            text = health.to_jsonl(rows)
            atomic_write(path, lambda f, text=text: f.write(text.encode()))

    def _read_log(self, path: Path, kind: type, what: str) -> list:
        if not path.exists():
            return []
        try:
            return health.parse_jsonl(path.read_text(), kind)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise MnistError(f"{path} is not a {what} file written by mnist train ({e})") from None

    @staticmethod
    def _append(path: Path, text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)

    def kept(self) -> str:
        """What survives a stop: the last checkpoint written, if any."""
        return f"the last good checkpoint {self.last} is kept" if self.last.exists() else "no checkpoint had been written yet"
