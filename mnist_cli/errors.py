"""Exception types for mistakes a user can fix; the CLI turns them into one line and exit 2."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class MnistError(Exception):
    """A user-facing error: bad input, missing file, bad config. Never a bug."""


class ConfigError(MnistError):
    """The config file or its overrides are invalid; holds every problem found."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class DataError(MnistError):
    """The dataset is missing, unreadable or corrupt."""


class CheckpointError(MnistError):
    """A file is not a usable mnist-cli checkpoint."""


class ImageError(MnistError):
    """An image file cannot be read or holds no digit."""


class SaveError(MnistError):
    """A result cannot be written where the user asked."""


class DeviceError(MnistError):
    """The requested device does not exist on this machine."""


class NumericalError(MnistError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training after a step; `path` holds the state to resume from. Not an error: exit 130."""

    def __init__(self, path: str, epoch: int, step: int):
        self.path, self.epoch, self.step = path, epoch, step
        super().__init__(f"interrupted at epoch {epoch}, step {step}; saved {path}")
