"""Errors a user can cause and fix. The CLI prints them in one line, without a traceback."""


class ShiftlabError(Exception):
    """Base class: the message says what to change."""


class ConfigError(ShiftlabError):
    """A run config names an unknown key, recipe or value."""


class DataError(ShiftlabError):
    """Input data is missing, malformed, or unusable (a missing column, an empty domain)."""


class BackboneError(ShiftlabError):
    """A backbone cannot be found or loaded."""


class TrainingError(ShiftlabError):
    """Training failed in a way the user can act on (a NaN loss)."""


class AdaptError(ShiftlabError):
    """A test-time adapter cannot work on the model it was given."""


class RunDirError(ShiftlabError):
    """A run directory is missing, or holds a run of a different config."""


class MissingExtraError(ShiftlabError):
    """An optional dependency is not installed."""
