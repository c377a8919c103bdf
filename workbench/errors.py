"""Errors a user can act on. The CLI prints their message in one line and exits non-zero; the app
shows them as ``gr.Error``. Anything else is a bug and keeps its traceback."""


class WorkbenchError(Exception):
    """Base class: the message names what is wrong and how to fix it."""


class ConfigError(WorkbenchError):
    """A config value, flag or file that cannot be used."""


class ArtifactError(WorkbenchError):
    """A file the workbench wrote (a manifest, card, LoRA, table, checkpoint) that cannot be used as it is
    on disk: cut short, edited, or made by something else. The message names the file and what to do."""


class ModelNotAvailable(WorkbenchError):
    """Weights that are not on this machine and cannot be downloaded now."""


def unknown_name(kind: str, name: str, known) -> ConfigError:
    """``unknown <kind> 'x'; known: a, b. Did you mean 'a'?`` for registries looked up by name."""
    import difflib

    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}; known: {', '.join(known)}.{hint}")
