"""Bad input, said in one line: the error every entry point raises for it (`UsageError`), the
rule that turns a builder's ValueError/FileNotFoundError, a missing package or an override Hydra
cannot apply into one (`usage_error`), and the exit that prints it (`exit_for`):

- bad input (UsageError, or a ValueError/FileNotFoundError): `gan.<name>: <message>` on stderr,
  one line naming the key or file, exit 2;
- any other failure: `gan.<name>: <Type>: <first line>`, exit 1, no traceback unless
  `HYDRA_FULL_ERROR=1` or `--debug` is given.

The runner every entry point goes through is gan/cli/runner.py.
"""

from __future__ import annotations

import os
import sys
import traceback

from hydra.errors import HydraException, InstantiationException
from omegaconf.errors import OmegaConfBaseException

from gan.io.places import CONF_DIR

USAGE, FAILURE = 2, 1


class UsageError(ValueError):
    """Bad input: the message is one line that names the config key to change."""


# The optional packages and the extra of pyproject.toml that installs each (README: the base
# install runs every command it shows without an extra; these are the optional features).
EXTRAS = {"optuna": "sweep", "submitit": "sweep", "joblib": "sweep", "onnx": "export",
          "onnxscript": "export", "onnxruntime": "export", "torch_fidelity": "inception",
          "mlflow": "mlflow", "wandb": "wandb"}


def missing_package(err: BaseException) -> UsageError | None:
    """A ModuleNotFoundError anywhere in `err`'s causes, as the one line naming the install:
    an optional package's extra, else the base install (Hydra reports a missing import as
    "Error locating target ...", which names neither)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ModuleNotFoundError) and err.name:
            top = err.name.partition(".")[0]
            extra = EXTRAS.get(top)
            how = (f'pip install -e ".[{extra}]" (the [{extra}] extra)' if extra else
                   "pip install -e . (the project's own dependencies)")
            return UsageError(f"the package {top!r} is not installed; {how}")
        err = err.__cause__ or err.__context__
    return None


def usage_error(err: BaseException) -> UsageError | None:
    """The one-line usage error inside `err` (unwrapping Hydra's InstantiationException), or
    None when `err` is not bad input."""
    outer = err
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, UsageError):  # our own line first (it may say more: logger=mlflow ...)
        return err
    missing = missing_package(outer)
    if missing is not None:
        return missing
    if isinstance(err, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return UsageError(one_line(err))  # one line, whatever the original
    if isinstance(err, (HydraException, OmegaConfBaseException)):
        # an override Hydra or OmegaConf cannot apply
        return UsageError(missing_option(str(err)) or one_line(err))
    return None


def missing_option(message: str) -> str | None:
    """Hydra's "Could not find/load 'group/name'" (a list like `logger=[tensorboard,x]` gets
    no list of options from Hydra), as one line naming the options of conf/<group>/."""
    import re

    found = re.search(r"Could not (?:find|load) '((?:\w+/)*\w+)/([^'/]+)'", message)
    folder = found and os.path.join(CONF_DIR, found.group(1))
    if not found or not os.path.isdir(folder):
        return None
    options = sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".yaml"))
    return (f"Could not find '{found.group(1)}/{found.group(2)}': {found.group(1)}= takes "
            f"{', '.join(options)}")


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (Hydra's messages run over several)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = "".join(f"{line}{' ' if line.endswith(('.', ':')) else '; '}" for line in lines)
    text = text.rstrip("; ") or type(err).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def exit_for(name: str, err: BaseException, debug: bool) -> SystemExit:
    """Print the one line for `err` (and its traceback when debugging) and return the exit."""
    usage = usage_error(err)
    if debug:
        traceback.print_exception(err)
    if usage is not None:
        print(f"gan.{name}: {usage}", file=sys.stderr, flush=True)
        return SystemExit(USAGE)
    if isinstance(err, KeyboardInterrupt):
        print(f"gan.{name}: interrupted", file=sys.stderr, flush=True)
        return SystemExit(130)
    # The house's own errors (Diverged ...) speak in sentences; others get their type's name.
    kind = "" if type(err).__module__.startswith("gan.") else f"{type(err).__name__}: "
    print(f"gan.{name}: {kind}{one_line(err)}", file=sys.stderr, flush=True)
    return SystemExit(FAILURE)
