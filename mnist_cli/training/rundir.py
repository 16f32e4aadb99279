"""A run folder: its files' names, the lock that keeps two runs apart, and what may be replaced or removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mnist_cli.disk import TEMP_SUFFIX, atomic_write, probe_writable
from mnist_cli.errors import MnistError
from mnist_cli.training.metrics import EpochMetrics, from_jsonl, to_jsonl

BEST, LAST, CONFIG, METRICS, LOCK = "best.pt", "last.pt", "config.yaml", "metrics.jsonl", ".lock"
# Every file a run writes (besides the lock), in one place: a feature that adds a file to the run folder adds it here,
# so `--overwrite` removes it with the rest and a killed run's temporary copies of it are cleaned up.
RUN_FILES = (BEST, LAST, CONFIG, METRICS)
CHECKPOINT_FILES = (BEST, LAST)


@dataclass(frozen=True)
class RunDir:
    """The folder `mnist train` writes: best.pt, last.pt, config.yaml, metrics.jsonl and .lock."""

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

    def kept(self) -> str:
        """What survives a stop: the last checkpoint written, if any."""
        return f"the last good checkpoint {self.last} is kept" if self.last.exists() else "no checkpoint had been written yet"
