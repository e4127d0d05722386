"""Loaded at start-up by a `python -m gan.*` child whose PYTHONPATH holds this folder (the README
test, tests/test_readme.py): the packages outside $GAN_ALLOWED_DISTS look uninstalled, as on a
machine that ran only the README's install line for that command. So a README command that needs
a package its install line does not bring fails the test, although this venv ([dev]) has it.

"Uninstalled" means consistently so, since libraries look before they import (Lightning checks
`rich`'s metadata, torchmetrics probes `scipy` with find_spec): such a package's metadata is not
found, importlib.util.find_spec answers None, and `import` raises ModuleNotFoundError."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys


def normal(name: str) -> str:
    return name.lower().replace("_", "-")


ALLOWED = {normal(d) for d in os.environ.get("GAN_ALLOWED_DISTS", "").split(",") if d}
# Parts of every venv, and the project itself
ALWAYS = {"pip", "setuptools", "wheel", "gan-lab"}


class Missing(importlib.abc.Loader):
    """A module that fails to load, naming the distribution the install line lacks."""

    def __init__(self, top: str):
        self.top = top

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {self.top!r} (the README's install line for "
                                  f"this command does not install it)", name=self.top)

    def exec_module(self, module):  # never reached: create_module raises
        raise ModuleNotFoundError(self.top)


class Guard(importlib.abc.MetaPathFinder):
    def __init__(self, modules: set[str]):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        return importlib.machinery.ModuleSpec(name, Missing(top)) if top in self.modules else None


def install(allowed: set[str]) -> None:
    installed = {normal(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    blocked = installed - allowed - ALWAYS
    modules = {top for top, owners in importlib.metadata.packages_distributions().items()
               if owners and all(normal(o) in blocked for o in owners)}
    from_name, discover = importlib.metadata.Distribution.from_name, \
        importlib.metadata.Distribution.discover
    find_spec = importlib.util.find_spec

    def guarded_from_name(cls, name: str):
        if normal(name) in blocked:
            raise importlib.metadata.PackageNotFoundError(name)
        return from_name(name)

    def guarded_discover(cls, **kwargs):
        return (d for d in discover(**kwargs) if normal(d.metadata["Name"] or "") not in blocked)

    def guarded_find_spec(name, package=None):
        if name.partition(".")[0] in modules:
            return None
        return find_spec(name, package)

    importlib.metadata.Distribution.from_name = classmethod(guarded_from_name)
    importlib.metadata.Distribution.discover = classmethod(guarded_discover)
    importlib.util.find_spec = guarded_find_spec
    sys.meta_path.insert(0, Guard(modules))


if ALLOWED:
    install(ALLOWED)
