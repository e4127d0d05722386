"""The one runner every entry point goes through (`run_cli`, `entry_point`), so `gan.<name>`
answers bad input and failures the same way everywhere (gan/io/usage.py says how), and
`--help` / `-h` prints the entry point's docstring and its config's keys, exit 0."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from gan.io.places import CONF_DIR
from gan.io.usage import exit_for

HELP_FLAGS = ("--help", "-h")


def debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"


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

