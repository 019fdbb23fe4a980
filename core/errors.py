"""The project's exception types: each names the file (or thing) and the problem."""


class StudioError(Exception):
    """Base of every error core raises on purpose (the CLI prints these as one line)."""


class ImageReadError(StudioError):
    """An image could not be read: missing, corrupt, truncated, unsupported or too large."""


class MaskError(StudioError):
    """A label mask is unreadable, of the wrong size, or holds ids outside the class table."""


class DatasetError(StudioError):
    """A data set folder does not have the layout its reader expects."""


class CheckpointError(StudioError):
    """A weight file is of an unknown format, for another architecture, or unsafe to load."""


class TrainingError(StudioError):
    """Training could not go on (NaN loss, out of memory with batch 1, no labelled pixels ...)."""


class Cancelled(StudioError):
    """A long job was cancelled by its caller (the rule: core/generators.py).

    ``partial``: what the job had done when it stopped, when that is worth keeping (training:
    a TrainResult with the weights of the last completed step); None otherwise."""

    def __init__(self, message: str = "cancelled", partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial
