"""Exceptions ferkit raises for user mistakes.

The CLI turns every `FerkitError` into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""


class FerkitError(Exception):
    """Base class: a problem with the user's input, files or environment."""

    exit_code = 2


class DataError(FerkitError):
    """A dataset, CSV or image that cannot be read as asked."""


class ImageError(DataError):
    """One image that cannot be decoded (missing, corrupt, unsupported, too large)."""


class VideoError(FerkitError):
    """A video that cannot be opened or has no frames."""


class ModelFileError(FerkitError):
    """A model file that is missing, corrupt, unsafe or does not match the data."""


class OutputError(FerkitError):
    """An output path that cannot be written."""


class ConfigError(FerkitError):
    """Options that do not make sense together, or an unknown name."""
