"""uv.lock is the exact environment (base install and every extra, [dev] included, with
hashes): it must say what pyproject.toml says, or `uv sync --frozen` installs something else
than the project asks for."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib", reason="Python < 3.11 has no tomllib")

UPDATE = "pyproject.toml and uv.lock disagree: run `uv lock` and commit uv.lock"


def _key(name: str, extras=(), specifier: str = "", marker: str = "") -> tuple:
    return (name.lower().replace("_", "-"), tuple(sorted(extras)),
            frozenset(str(s) for s in SpecifierSet(specifier)), marker.replace('"', "'"))


def wanted(project: dict) -> set:
    out = set()
    groups = [(None, project["dependencies"]),
              *project.get("optional-dependencies", {}).items()]
    for extra, requirements in groups:
        for text in requirements:
            req = Requirement(text)
            marker = f"extra == '{extra}'" if extra else ""
            out.add(_key(req.name, req.extras, str(req.specifier), marker))
    return out


def test_the_lock_says_what_pyproject_says():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    me = next(p for p in lock["package"] if p["name"] == project["name"])
    locked = {_key(r["name"], r.get("extras", ()), r.get("specifier", ""), r.get("marker", ""))
              for r in me["metadata"]["requires-dist"]}
    assert locked == wanted(project), UPDATE
    assert lock["requires-python"] == project["requires-python"], UPDATE
    assert sorted(me["metadata"]["provides-extras"]) == sorted(project["optional-dependencies"])
    # every locked torch admits the requirement, and every locked wheel has its hash
    versions = {p["name"]: Version(p["version"]) for p in lock["package"] if "version" in p}
    assert versions["torch"] in Requirement(next(
        d for d in project["dependencies"] if d.startswith("torch>"))).specifier
    assert all(w.get("hash", "").startswith("sha256:")
               for p in lock["package"] for w in p.get("wheels", []))


def test_the_check_catches_a_changed_bound():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    changed = {**project, "dependencies": [d.replace("<2", "<3") if d.startswith("torchmetrics")
                                           else d for d in project["dependencies"]]}
    assert wanted(changed) != wanted(project)
