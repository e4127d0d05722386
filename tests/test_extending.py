"""docs/extending.md's worked examples are true: each code block goes where the page says (a
class appended to an existing module, a new module, a YAML in conf/), the three train together
through the real wiring, and each class computes what its docstring says."""

from __future__ import annotations

import importlib
import json
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from gan.core.losses import BCE
from gan.io.artefacts import read_status
from gan.runs.wiring import build_module, fit
from tests.conftest import REPO, data_root, needs_mnist

GUIDE = REPO / "docs" / "extending.md"
BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.S | re.M)
PATH = re.compile(r"`((?:gan|conf)/[\w/]+\.(?:py|yaml))`")


def examples() -> dict[str, str]:
    """{file: code} for every python/yaml block of the guide, named by the first file path in
    the paragraph just above it."""
    text, found = GUIDE.read_text(), {}
    for match in BLOCK.finditer(text):
        above = text[:match.start()].rstrip("\n").rsplit("\n\n", 1)[-1]
        path = PATH.search(above)
        assert path, f"a {match.group(1)} block of {GUIDE.name} names no file above it"
        found[path.group(1)] = match.group(2)
    return found


def install(path: str, code: str, monkeypatch) -> None:
    """Run the block as part of the module the guide puts it in, for this test only."""
    name = path.removesuffix(".py").replace("/", ".")
    if (REPO / path).is_file():  # appended to an existing module
        module = importlib.import_module(name)
        namespace = dict(vars(module))
        exec(compile(code, path, "exec"), namespace)
        for key, value in namespace.items():
            if key not in vars(module):
                monkeypatch.setattr(module, key, value, raising=False)
        return
    module = types.ModuleType(name)
    module.__file__ = str(REPO / path)
    exec(compile(code, path, "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, name, module)
    parent, _, child = name.rpartition(".")
    monkeypatch.setattr(importlib.import_module(parent), child, module, raising=False)


@pytest.fixture
def guide(monkeypatch, tmp_path) -> str:
    """The guide's classes importable by their `_target_`s and its YAMLs on Hydra's search
    path; returns the override that adds that path."""
    from gan.data.registry import DATASETS
    from gan.metrics.extractors import EXTRACTORS

    conf = tmp_path / "conf"
    registries = [(DATASETS, set(DATASETS)), (EXTRACTORS, set(EXTRACTORS))]
    for path, code in examples().items():
        if path.endswith(".yaml"):
            target = conf / Path(path).relative_to("conf")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
        else:
            install(path, code, monkeypatch)
    yield f"hydra.searchpath=[file://{conf}]"
    for registry, before in registries:  # the guide's entries leave with the test
        for key in set(registry) - before:
            del registry[key]


def test_the_guide_has_a_loss_a_trick_and_a_network():
    assert set(examples()) == {"gan/core/losses.py", "conf/loss/softplus.yaml",
                               "gan/tricks/drift.py", "conf/tricks/drift.yaml",
                               "gan/networks/linear.py", "conf/model/linear.yaml",
                               "gan/data/colour.py", "gan/data/registry.py",
                               "gan/metrics/extractors.py", "conf/data/colour_mnist.yaml"}
    appended = ("gan/core/losses.py", "gan/data/registry.py", "gan/metrics/extractors.py")
    for path in examples():
        if path.endswith(".py") and path not in appended:
            assert not (REPO / path).exists(), f"{path} exists: the guide's example is not new"


def test_the_examples_train_together(guide, fast_cfg, tmp_path):
    cfg = fast_cfg(guide, "loss=softplus", "tricks=[drift]", "model=linear")
    trainer, module = fit(cfg)
    assert type(module.loss).__name__ == "Softplus"
    assert [type(t).__name__ for t in module.tricks] == ["DriftPenalty"]
    assert type(module.generator).__module__ == "gan.networks.linear"
    assert module.g_step == 8 and read_status(tmp_path)["status"] == "done"
    # softplus has no penalty of its own: what D's loss got on top is the drift term, > 0
    assert trainer.callback_metrics["train/d_penalty"] > 0


def test_the_network_example_is_conditional_on_request(guide, fast_cfg):
    module, _ = build_module(fast_cfg(guide, "model=linear", "model.conditional=true"))
    z = torch.randn(4, module.latent_dim)
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    G, D = module.generator, module.discriminator
    assert G.conditional and not torch.allclose(G(z, zeros), G(z, ones))
    x = G(z, zeros)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    assert D(x, zeros).shape == (4,) and not torch.allclose(D(x, zeros), D(x, ones))


def test_softplus_is_bce(guide):
    from gan.core.losses import Softplus

    d_real, d_fake = torch.randn(64) * 3, torch.randn(64) * 3
    assert torch.allclose(Softplus().d_loss(d_real, d_fake), BCE().d_loss(d_real, d_fake))
    assert torch.allclose(Softplus().g_loss(d_fake), BCE().g_loss(d_fake))


def test_drift_penalty_is_its_formula(guide):
    from gan.tricks.drift import DriftPenalty

    D = torch.nn.Linear(5, 1)
    critic = lambda x: D(x).squeeze(1)  # noqa: E731 (a critic as the step hands it over)
    real, fake = torch.randn(8, 5), torch.randn(8, 5)
    expected = 0.5 * critic(real).pow(2).mean()
    assert torch.allclose(DriftPenalty(0.5).d_penalty(critic, real, fake, step=0), expected)
    with pytest.raises(ValueError, match="tricks.drift.epsilon"):
        DriftPenalty(-1.0)


@needs_mnist
def test_the_dataset_example_trains_with_its_own_shape_and_extractor(guide, fast_cfg, tmp_path):
    cfg = fast_cfg(guide, "data=colour_mnist", "trainer.limit_train_batches=4",
                   "callbacks.metrics.every_n_epochs=null", "callbacks.metrics.n_final=1000",
                   "tricks.self_cond.n_images=256", "tricks.self_cond.clusters=4",
                   "model.generator.width=8", "model.discriminator.width=8", fake_data=False)
    _, module = fit(cfg)
    assert module.spec.shape == (3, 28, 28)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["protocol"]["extractor_name"] == "colour_mnist"
    assert report["protocol"]["spec"]["shape"] == [3, 28, 28]
    assert report["metrics"]["fid"] > 0 and "absent" not in report
    from gan.data.colour import ColourMNIST
    from gan.metrics.extractors import load

    images, labels = ColourMNIST(root=str(data_root()), download=False).load(train=False)
    logits = load("colour_mnist").features_and_logits(images[:500].float() / 127.5 - 1)[1]
    assert (logits.argmax(1) == labels[:500]).float().mean() > 0.95  # the tint hides nothing
