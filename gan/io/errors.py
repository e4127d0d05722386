"""Bad input, said in one line: the error every entry point raises for it and the rule that turns
a builder's ValueError/FileNotFoundError into one."""

from __future__ import annotations

from hydra.errors import InstantiationException


class UsageError(ValueError):
    """Bad input: the message is one line that names the config key to change."""


def usage_error(err: BaseException) -> UsageError | None:
    """The one-line usage error inside `err` (unwrapping Hydra's InstantiationException), or
    None when `err` is not bad input."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, UsageError):
        return err
    if isinstance(err, (ValueError, FileNotFoundError)):
        return UsageError(" ".join(str(err).split()))  # one line, whatever the original
    return None
