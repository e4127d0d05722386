"""Bad input, said in one line: the error every entry point raises for it, the rule that turns
a builder's ValueError/FileNotFoundError into one, and the one runner every entry point goes
through (`run_cli`), so `gan.<name>` answers bad input and failures the same way everywhere:

- bad input (UsageError, or a ValueError/FileNotFoundError): `gan.<name>: <message>` on stderr,
  one line naming the key or file, exit 2;
- any other failure: `gan.<name>: <Type>: <first line>`, exit 1, no traceback unless
  `HYDRA_FULL_ERROR=1` or `--debug` is given;
- `--help` / `-h`: the entry point's docstring and its config's keys, exit 0.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from hydra.errors import HydraException, InstantiationException
from omegaconf.errors import OmegaConfBaseException

USAGE, FAILURE = 2, 1
HELP_FLAGS = ("--help", "-h")


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

    from gan.io.config import CONF_DIR

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


def debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"


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


def guarded(name: str, fn: Callable, debug: bool) -> Callable:
    """`fn` with every exception turned into the one line and the exit code (SystemExit, which
    Hydra lets through, so its own traceback printer never sees the error)."""
    @functools.wraps(fn)  # Hydra names the job after the wrapped function's module
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as err:
            raise exit_for(name, err, debug) from None

    return call


def compose_config(config_name: str, overrides: list[str], hydra: bool = False):
    """conf/<config_name>.yaml with `overrides`, outside any Hydra run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gan.io.config import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name, overrides=list(overrides), return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def precheck(cfg, check: Callable) -> None:
    """`check(cfg)` outside Hydra's run, with `${hydra:runtime.output_dir}` as the run dir."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(cfg.hydra.run.dir).absolute())
    HydraConfig.instance().set_config(cfg)
    check(cfg)


def print_help(name: str, config_name: str | None) -> None:
    module = sys.modules.get(f"gan.{name}") or sys.modules.get("__main__")
    print((getattr(module, "__doc__", None) or f"gan.{name}").strip())
    if config_name is None:
        return
    from omegaconf import OmegaConf

    cfg = compose_config(config_name, [])
    print(f"\nKeys (conf/{config_name}.yaml), set with key=value; --debug shows tracebacks:\n")
    print(OmegaConf.to_yaml(cfg, resolve=False).rstrip())


def run_cli(name: str, fn: Callable, config_name: str | None = None,
            argv: list[str] | None = None, *, hydra_app: bool = True,
            positional: Callable[[str], bool] | None = None,
            check: Callable | None = None) -> Any:
    """Run entry point `gan.<name>` with the house's error style.

    `hydra_app`: `fn(cfg)` runs under `@hydra.main` (run dir, logging, multirun); the overrides
    are composed once before, so a bad one is refused in one line before Hydra starts.
    Otherwise `fn(cfg)` gets conf/<config_name>.yaml composed with the overrides (or `fn(argv)`
    without a config). `positional(arg)`: which arguments are not overrides (passed to `fn`
    as `fn(cfg, args)`). `check(cfg)`: the entry point's checks of its keys and outputs, run
    on the composed config before Hydra writes its run dir (a refusal leaves nothing behind; a
    read-only run dir is named, not a logging traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        print_help(name, config_name)
        raise SystemExit(0)
    debug = debugging(argv)
    argv = [a for a in argv if a != "--debug"]
    extra = [a for a in argv if positional is not None and positional(a)]
    overrides = [a for a in argv if a not in extra]
    try:
        if config_name is None:
            return fn(argv)
        if not any(a.startswith("-") for a in overrides):  # plain overrides: check them first
            cfg = compose_config(config_name, overrides, hydra=hydra_app)
            if hydra_app and check is not None:
                precheck(cfg, check)
        if not hydra_app:
            return fn(cfg, extra) if positional is not None else fn(cfg)
    except (Exception, KeyboardInterrupt) as err:
        raise exit_for(name, err, debug) from None
    import hydra

    from gan.io.config import CONF_DIR

    app = hydra.main(version_base="1.3", config_path=CONF_DIR,
                     config_name=config_name)(guarded(name, fn, debug))
    saved = sys.argv
    sys.argv = [saved[0] if saved else f"gan.{name}", *overrides]
    try:
        return app()
    finally:
        sys.argv = saved


def entry_point(name: str, fn: Callable, config_name: str | None = None, **options) -> Callable:
    """`main(argv=None)` of `gan.<name>`: `run_cli` with these arguments. `main.__wrapped__(cfg)`
    runs `fn` on a composed config with the same error style (what tests call)."""
    def main(argv: list[str] | None = None):
        return run_cli(name, fn, config_name, argv, **options)

    main.__wrapped__ = guarded(name, fn, debug=False)
    main.__doc__ = f"`python -m gan.{name}` (and the gan-{name} console script)."
    return main

