"""The README stays a true map: its commands run in a cheap form, the guides' commands name
modules and config options that exist, and every relative link in README.md and docs/ points at
a file (and a heading) that exists."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gan.io.artefacts import read_status
from gan.io.config import CONF_DIR
from tests.conftest import REPO, child_env, run_module

README = REPO / "README.md"
GUIDES = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *GUIDES]  # docs/*/report.md are gan.report outputs, kept as written
RUN_DIR = "outputs/<date>/<time>"  # the README's stand-in for the folder a run writes
# A training command's cheap form: these go after the README's own overrides, and the last
# value of a key wins, so the model, loss and tricks the README names still compose and build.
# data.n=128: experiment=stacked_mnist clusters 100 images, and k-means needs as many
CHEAP_TRAIN = ["data=fake", "data.n=128", "data.batch_size=16", "budget=epochs", "budget.value=1",
               "trainer.max_epochs=1", "trainer.accelerator=cpu", "n_fixed=16", "threads=1",
               "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
# Fake data has no metric classifier, so the projection uses pixels alone, in a few steps.
CHEAP = {
    "gan.generate": [],
    "gan.report": [],
    "gan.export": [],
    "gan.project": ["projection.features=none", "projection.steps=4", "projection.explore_steps=2",
                    "projection.bank=16", "projection.restarts=1", "variations=2"],
}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def commands(text: str) -> list[list[str]]:
    """Every command of the page's bash blocks as argv: continuation lines joined, `a && b`
    split, comments and leading `VAR=value` assignments dropped."""
    return [argv for block in bash_blocks(text) for argv in block_commands(block)]


def block_commands(block: str) -> list[list[str]]:
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            argv = shlex.split(part, comments=True)
            while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                argv = argv[1:]
            if argv:
                found.append(argv)
    return found


def with_install_lines(text: str) -> list[tuple[list[str], str]]:
    """(command, the install it runs on): the last `pip install -e SPEC` before it in its own
    bash block, else the Quickstart's `pip install -e .` (the README's base install)."""
    out = []
    for block in bash_blocks(text):
        spec = "."
        for argv in block_commands(block):
            if argv[:3] == ["pip", "install", "-e"] and len(argv) == 4:
                spec = argv[3]
            out.append((argv, spec))
    return out


def python_modules(text: str) -> list[tuple[str, list[str]]]:
    return [(c[2], c[3:]) for c in commands(text) if c[:2] == ["python", "-m"]]


# ---- the README's commands, run ---------------------------------------------------------------

def concrete(args: list[str], run: Path) -> list[str]:
    """The README's placeholder run folder becomes a real one; repository paths (the example
    image) become absolute, since the commands run in a temporary folder."""
    out = []
    for arg in args:
        arg = arg.replace(RUN_DIR, str(run))
        key, eq, value = arg.partition("=")
        if eq and value and not value.startswith("/") and (REPO / value).is_file():
            arg = f"{key}={REPO / value}"
        out.append(arg)
    return out


def one_seed(args: list[str]) -> list[str]:
    """A sweep's seed list cut to its first seed: the other swept keys still sweep."""
    return [a.split(",")[0] if a.startswith("seed=") else a for a in args]


def extras(spec: str) -> list[str]:
    match = re.fullmatch(r"\.(?:\[(.*)\])?", spec)
    assert match, f"pip install -e {spec}: expected . or .[extra,...]"
    return [e for e in (match.group(1) or "").split(",") if e]


def check_pip(argv: list[str]) -> None:
    assert argv[:3] == ["pip", "install", "-e"] and len(argv) == 4, argv
    declared = pyproject()["project"]["optional-dependencies"]
    for extra in extras(argv[3]):
        assert extra in declared, f"pip install -e {argv[3]}: no extra [{extra}] in pyproject.toml"


def pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def distributions(spec: str) -> set[str]:
    """Every distribution `pip install -e SPEC` brings: our dependencies (and the extras'),
    then what each of those requires, by the installed packages' own metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    project = pyproject()["project"]
    wanted, seen, todo = list(project["dependencies"]), set(), []
    extras_todo = extras(spec)
    while extras_todo:  # an extra may name others of ours: gan-lab[sweep,export]
        extra = extras_todo.pop()
        for line in project["optional-dependencies"][extra]:
            req = Requirement(line)
            if req.name == project["name"]:
                extras_todo += sorted(req.extras)
            else:
                wanted.append(line)
    todo = [Requirement(line) for line in wanted]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            lines = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}) or any(
                    sub.marker.evaluate({"extra": e}) for e in req.extras):
                todo.append(sub)
    return seen


def install_line_env(spec: str) -> dict:
    """A child's environment in which only what `pip install -e SPEC` brings imports
    (tests/import_guard/sitecustomize.py)."""
    return {"GAN_ALLOWED_DISTS": ",".join(sorted(distributions(spec))),
            "PYTHONPATH": str(REPO / "tests" / "import_guard")}


def check_uv(argv: list[str]) -> None:
    """`uv sync --locked [--extra X ...]`: the lock as committed (tests/test_lock.py keeps it
    in step with pyproject.toml), with extras that exist."""
    assert argv[:3] == ["uv", "sync", "--locked"] and (REPO / "uv.lock").is_file(), argv
    named = [a for flag, a in zip(argv[3:], argv[4:]) if flag == "--extra"]
    for extra in named:
        check_pip(["pip", "install", "-e", f".[{extra}]"])


# A child that composes each `gan.train` command (README overrides + the cheap form) and builds
# its module: every part it names exists and builds. Run under the import guard, so it imports
# nothing of the tests (pytest is not in the base install).
BUILD = ("import json, sys; from pathlib import Path; from gan.io.config import compose_train; "
         "from gan.runs.wiring import build_module; "
         "[build_module(compose_train(a, Path(sys.argv[2]) / str(i))) "
         "for i, a in enumerate(json.loads(sys.argv[1]))]")


def test_readme_commands_run_in_a_cheap_form(tmp_path):
    """Each command runs in a child process in which only the packages of the README's install
    line for it import, so a command needing a package its install does not bring fails."""
    run = tmp_path / "outputs" / "run"
    trained = ran = 0
    build_only: dict[str, list[list[str]]] = {}
    for argv, spec in with_install_lines(README.read_text()):
        if argv[:2] == ["pip", "install"]:
            check_pip(argv)
            continue
        if argv[0] == "uv":  # the locked install: not run here (a full download)
            check_uv(argv)
            continue
        if argv == ["pytest"]:
            continue  # the test command itself: test_test_command_is_what_ci_runs
        if argv[0] == "tensorboard":
            assert argv[1] == "--logdir" and (tmp_path / argv[2]).is_dir(), argv
            continue
        assert argv[:2] == ["python", "-m"], f"no cheap form for a README command: {argv}"
        module, args = argv[2], concrete(argv[3:], run)
        env = install_line_env(spec)
        if module == "gan.train" and "-m" in args:  # a sweep: a real process, its exit code
            run_module(module, *one_seed(args), *CHEAP_TRAIN, cwd=tmp_path, timeout=600, env=env)
        elif module == "gan.train" and not trained:  # the quickstart: as the user types it
            proc = run_module(module, *args, *CHEAP_TRAIN, f"hydra.run.dir={run}",
                              cwd=tmp_path, env=env)
            assert read_status(run)["status"] == "done"
            # a quiet console: no third-party advertisement (Lightning's litlogger tip)
            assert "Tip:" not in proc.stdout + proc.stderr and "litlogger" not in proc.stderr
            trained = 1
        elif module == "gan.train" and not any(a.startswith("ckpt_path=") for a in args):
            build_only.setdefault(spec, []).append(args)
        elif module in CHEAP or module == "gan.train":  # resume, sample, project, export, report
            run_module(module, *args, *CHEAP.get(module, CHEAP_TRAIN), cwd=tmp_path, env=env)
        else:
            pytest.fail(f"no cheap form for a README command: {' '.join(argv)}")
        ran += 1
    for spec, argv_list in build_only.items():  # one child per install line builds them all
        cheap = [[*args, *CHEAP_TRAIN] for args in argv_list]
        subprocess.run([sys.executable, "-c", BUILD, json.dumps(cheap), str(tmp_path / "built")],
                       cwd=tmp_path, env=child_env(**install_line_env(spec)), check=True,
                       timeout=300)
    assert trained and ran >= 8, f"the README tour lost its commands ({ran} ran)"
    for made in ["grid.png", "walks.png", "projected/reconstruction.png", "generator.onnx",
                 "outputs/multirun/bce_vs_hinge/report/report.md"]:
        assert (tmp_path / made).is_file(), f"a README command did not write {made}"


def test_a_command_needing_an_extra_fails_on_the_base_install(tmp_path):
    """The guard can fail: on the base install's packages onnx (the [export] extra) is not
    there, to an import or to a look at its metadata; with the extra it is."""
    probe = ("import importlib.metadata as m, importlib.util as u; "
             "print(u.find_spec('onnx') is not None, "
             "'onnx' in {d.metadata['Name'] for d in m.distributions()}); import onnx")
    for spec, there in ((".", False), (".[export]", True)):
        proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                              text=True, env=child_env(**install_line_env(spec)))
        assert proc.stdout.split() == [str(there)] * 2, proc.stderr
        assert (proc.returncode == 0) == there, proc.stderr
        assert there or "No module named 'onnx'" in proc.stderr, proc.stderr
    assert "onnx" in distributions(".[export]") and "onnx" not in distributions(".")


def test_test_command_is_what_ci_runs():
    tests = README.read_text().split("\n## Tests\n", 1)[1]
    assert bash_blocks(tests)[0] == "pytest\n"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "pytest" in ci and "pytest -m slow" in ci
    assert "python -m pip install -q -e ." in ci  # the base install first, as the Quickstart


# ---- the guides' commands: modules and config options exist ----------------------------------

@pytest.fixture(scope="module")
def group_options():
    """Hydra's own list of a config group's options: conf/ and the installed plugins'
    (hydra/launcher=joblib comes from hydra-joblib-launcher)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        yield lambda group: set(loader.get_group_options(group))
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_commands_name_real_modules_and_options(page, group_options):
    for module, args in python_modules(page.read_text()):
        assert module.startswith("gan.") and (REPO / f"{module.replace('.', '/')}.py").is_file(), \
            f"{page.name}: python -m {module}"
        for token in args:
            group, _, option = token.lstrip("+~").partition("=")
            options = group_options(group) if option and "." not in group else set()
            if options and "<" not in option:  # <name>: a placeholder
                for name in option.strip("[]").split(","):
                    assert name in options, f"{page.name}: {token} (options: {sorted(options)})"


def test_the_command_parser_sees_every_python_line():
    text = "```bash\n# a comment\nA=1 python -m gan.train x=1 \\\n  y=2   # note\n" \
           "pip install -e . && python -m gan.report d\n```\n"
    assert python_modules(text) == [("gan.train", ["x=1", "y=2"]), ("gan.report", ["d"])]


# ---- links ------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    for link in links(page):
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.relative_to(REPO)}: {link} does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{page.relative_to(REPO)}: no heading #{anchor}"


def test_link_check_can_fail(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Top\n[ok](a.md#top) [gone](b.md) <img src=\"c.png\">\n")
    assert links(page) == ["a.md#top", "b.md", "c.png"]
    assert anchors(page) == {"top"} and slug("The tutorial's advice, measured") == \
        "the-tutorials-advice-measured"


def test_guides_are_listed_in_the_readme():
    listed = set(links(README))
    assert all(f"docs/{g.name}" in listed for g in GUIDES), "a guide in docs/ the README omits"
