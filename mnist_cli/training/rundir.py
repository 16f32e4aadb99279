"""A run folder: its files' names, the lock that keeps two runs apart, and the one rule for replacing a run."""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

from mnist_cli.disk import TEMP_RANDOM, TEMP_SUFFIX, os_reason, probe_writable
from mnist_cli.errors import MnistError
from mnist_cli.record import EVENTS, LEGACY_LOGS, RESULT

BEST, LAST, CONFIG, LOCK = "best.pt", "last.pt", "config.yaml", ".lock"
REPORT = "report"  # the folder `mnist report` writes into a run folder: its own, never a run's to remove
# Every file a run writes (besides the lock), in one place: `--overwrite` removes these by name and nothing else.
RUN_FILES = (BEST, LAST, CONFIG, EVENTS, RESULT, *LEGACY_LOGS)
TENSORBOARD_FILES = "events.out.tfevents.*"  # train.tensorboard: a run writes one per start (a resume starts another)
CHECKPOINT_FILES = (BEST, LAST)
# `.best.pt.k3j_x9ab.tmp`: the name `atomic_write` gives a run file's temporary copy, and nothing else.
OUR_TEMP = re.compile(rf"\.({'|'.join(map(re.escape, RUN_FILES))})\.{TEMP_RANDOM}{re.escape(TEMP_SUFFIX)}")


@dataclass(frozen=True)
class RunDir:
    """The folder `mnist train` writes: config.yaml, events.jsonl, best.pt, last.pt, result.json, .lock."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __str__(self) -> str:
        return str(self.path)

    best = property(lambda self: self.path / BEST)
    last = property(lambda self: self.path / LAST)
    config = property(lambda self: self.path / CONFIG)
    events = property(lambda self: self.path / EVENTS)
    result = property(lambda self: self.path / RESULT)
    lock_file = property(lambda self: self.path / LOCK)

    def prepare(self, create: bool = True) -> None:
        """Create the folder (unless `create` is false: a dry run makes nothing) and prove that a file can be written
        there or in the nearest existing folder on the way (root ignores permission bits)."""
        try:
            if create:
                self.path.mkdir(parents=True, exist_ok=True)
            probe_writable(self.path)
        except (OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise MnistError(f"output directory {self.path} cannot be created or written to ({reason})") from None

    def refuse_to_replace(self, overwrite: bool = False) -> None:
        """The one rule (LightningCLI's): a folder holding a run (its last.pt) is trained into only with --overwrite
        (or --resume), and a new run deletes only a run's files, by name; a folder holding anything else is refused."""
        try:
            names = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
        except OSError as e:
            raise MnistError(f"output directory {self.path} cannot be listed ({os_reason(e)})") from None
        foreign = [n for n in names if n not in (*RUN_FILES, LOCK, REPORT) and not is_written_by_a_run(n)]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise MnistError(
                f"{self.path} holds files that are not a run's ({shown}); a run writes only into an empty folder "
                "or one holding a run: choose another --out"
            )
        ours = [n for n in names if n in RUN_FILES]
        if ours and not {LAST, EVENTS, *LEGACY_LOGS} & set(ours):  # a run writes its event log before any other file
            raise MnistError(
                f"{self.path / ours[0]} was not written by mnist train (the folder holds no run's {EVENTS}); "
                "a run replaces only its own files: move it away or choose another --out"
            )
        if LAST in names and not overwrite:
            raise MnistError(
                f"{self.path} already holds a run ({LAST}); continue it with --resume auto, "
                "replace it with --overwrite, or choose another --out"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold .lock while a run writes here; under it, temporary files left by a killed run are removed."""
        lock = filelock.FileLock(self.lock_file, timeout=0)
        try:
            self.path.mkdir(parents=True, exist_ok=True)  # here, not in the preflight: a refused run leaves no folder
            lock.acquire()
        except filelock.Timeout:
            raise MnistError(f"another `mnist train` is writing to {self.path}; wait for it or use another --out") from None
        except OSError as e:
            reason = "it is a folder" if isinstance(e, IsADirectoryError) else os_reason(e)
            raise MnistError(
                f"cannot open the run's lock file {self.lock_file} ({reason}); "
                "if no `mnist train` is writing there, remove it or choose another --out"
            ) from None
        try:
            for stale in self.path.iterdir():
                if OUR_TEMP.fullmatch(stale.name):
                    stale.unlink(missing_ok=True)
            yield
        finally:
            lock.release()

    def remove_previous_run(self) -> None:
        """Remove every file an earlier run left here, before a new run saves anything: stopped early, the new run
        must not leave the old best.pt beside its own files. last.pt goes last: until then the folder holds a run."""
        event_files = sorted(p.name for p in self.path.glob(TENSORBOARD_FILES))
        for name in sorted((*RUN_FILES, *event_files), key=lambda n: n == LAST):
            try:
                (self.path / name).unlink(missing_ok=True)
            except IsADirectoryError:
                raise MnistError(f"{self.path / name} is a folder; a run folder's {name} must be a file") from None
            except OSError as e:
                raise MnistError(f"cannot remove the earlier run's {self.path / name} ({e.strerror})") from None

    def kept(self) -> str:
        """What survives a stop: the last checkpoint written, if any."""
        return f"the last good checkpoint {self.last} is kept" if self.last.exists() else "no checkpoint had been written yet"


def is_written_by_a_run(name: str) -> bool:
    """A run's TensorBoard event file or the temporary copy of one of its files."""
    return fnmatch.fnmatchcase(name, TENSORBOARD_FILES) or OUR_TEMP.fullmatch(name) is not None
