"""Errors a user can act on. The CLI prints their message in one line and exits non-zero; the app
shows them as ``gr.Error``. Anything else is a bug and keeps its traceback."""


class WorkbenchError(Exception):
    """Base class: the message names what is wrong and how to fix it."""


class ConfigError(WorkbenchError):
    """A config value, flag or file that cannot be used."""


class ModelNotAvailable(WorkbenchError):
    """Weights that are not on this machine and cannot be downloaded now."""
