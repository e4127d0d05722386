"""The recipes (conf/recipe/) and the studies (conf/variant/, conf/study/): every group composes
and changes exactly the keys its `# changes:` line claims against the recipe the studies pin
(recipe=unconditional), and the default recipe is the measured winner: checked by composing, not
by training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from gan.io.config import CONF_DIR
from tests.conftest import compose, compose_config

VARIANTS = sorted(p.stem for p in (Path(CONF_DIR) / "variant").glob("*.yaml"))


def flat(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def composed(*overrides: str) -> dict:
    return flat(OmegaConf.to_container(compose("train", *overrides), resolve=False))


def claimed(variant: str) -> list[str]:
    text = (Path(CONF_DIR) / "variant" / f"{variant}.yaml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("# changes:"))
    value = line.removeprefix("# changes:").strip()
    return [] if value == "nothing" else [k.strip() for k in value.split(",")]


def under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


@pytest.fixture(scope="module")
def default():
    yield composed()
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def unconditional():
    """The recipe every variant is one change to (conf/study/*.yaml pin it)."""
    yield composed("recipe=unconditional")
    GlobalHydra.instance().clear()


def test_the_study_covers_the_tutorials_suggestions():
    assert len(VARIANTS) >= 20 and "baseline" in VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_changes_exactly_what_it_claims(unconditional, variant):
    config = composed("recipe=unconditional", f"+variant={variant}")
    changed = sorted(k for k in set(unconditional) | set(config)
                     if unconditional.get(k) != config.get(k))
    claims = claimed(variant)
    stray = [k for k in changed if not any(under(k, c) for c in claims)]
    assert not stray, f"{variant} changes keys it does not claim: {stray}"
    idle = [c for c in claims if not any(under(k, c) for k in changed)]
    assert not idle, f"{variant} claims keys it does not change: {idle}"
    assert bool(changed) == (variant != "baseline")


# The default recipe (`python -m gan.train` with no overrides), pinned: a change to it must be a
# deliberate diff here and in docs/recipes.md's "The default recipe" figures. The self-conditioned
# GAN: the unconditional recipe's nets, data, loss and EMA, conditioned on 50 clusters of D's
# features, lr 2e-4 for both nets.
# What both recipes share: the DCGAN nets and widths, BCE, Adam's betas, the data, 4 epochs, EMA.
COMMON_RECIPE = {
    "model.generator._target_": "gan.networks.dcgan.Generator",
    "model.discriminator._target_": "gan.networks.dcgan.Discriminator",
    "model.generator.width": 32,
    "model.discriminator.width": 16,
    "model.generator.norm": "batch",
    "model.latent_dim": 100,
    "loss._target_": "gan.core.losses.BCE",
    "loss.n_critic": 1,
    "optim.generator._target_": "torch.optim.Adam",
    "optim.betas": [0.4, 0.999],
    "data._target_": "gan.data.images.MNIST",
    "tricks.ema._target_": "gan.tricks.ema.EMA",
    "tricks.ema.decay": 0.99,
    "seed": 0,
}
DEFAULT_RECIPE = {
    **COMMON_RECIPE,
    "model.conditional": True,   # conf/tricks/self_cond.yaml's
    "optim.lr_g": 4e-4,          # issue 29: batch 64, lr 4e-4, 8 epochs (docs/digits/levers.md)
    "optim.lr_d": 4e-4,
    "data.batch_size": 64,
    "trainer.max_epochs": 8,
    "tricks.self_cond._target_": "gan.tricks.self_conditioned.SelfConditioned",
    "tricks.self_cond.clusters": 50,
    "tricks.self_cond.recluster_every": 2000,
    "tricks.self_cond.n_images": 10000,
}
# The unconditional recipe (the default before; every study's baseline), pinned the same way.
UNCONDITIONAL_RECIPE = {
    **COMMON_RECIPE,
    "model.conditional": False,
    "optim.lr_g": 1.7e-3,
    "optim.lr_d": 7.0e-5,
    "data.batch_size": 32,
    "trainer.max_epochs": 4,
}


def test_default_recipe_is_pinned(default):
    assert {k: default[k] for k in DEFAULT_RECIPE} == DEFAULT_RECIPE
    assert {k.split(".")[1] for k in default if k.startswith("tricks.")} == {"ema", "self_cond"}


def test_the_unconditional_recipe_is_pinned(unconditional):
    assert {k: unconditional[k] for k in UNCONDITIONAL_RECIPE} == UNCONDITIONAL_RECIPE
    assert {k.split(".")[1] for k in unconditional if k.startswith("tricks.")} == {"ema"}


def resolved(*overrides: str) -> dict:
    """The parts of the composed config that decide training, interpolations resolved (the
    callbacks' ${hydra:...} paths need a run)."""
    cfg = compose("train", *overrides)
    parts = ("data", "model", "optim", "loss", "tricks", "budget", "seed")
    out = flat({k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k])
                else cfg[k] for k in parts if k in cfg})
    return {**out, "trainer.max_epochs": cfg.trainer.max_epochs}


def test_the_default_is_the_measured_winner():
    """The default trains exactly what the digits study measured as `+variant=self_cond_k50`
    on the unconditional recipe (docs/digits/notes.md), at the batch, rates and budget issue 29
    measured against it (docs/digits/levers.md)."""
    assert resolved() == resolved("recipe=unconditional", "+variant=self_cond_k50",
                                  "data.batch_size=64", "optim.lr_g=4e-4", "optim.lr_d=4e-4",
                                  "trainer.max_epochs=8")


@pytest.mark.parametrize("tricks", ["[ema]", "[]", "[ema,label_smoothing]"])
def test_the_default_never_conditions_on_labels_without_its_trick(tricks):
    """model.conditional comes with tricks.self_cond: a tricks list without it trains an
    unconditional GAN, not a cGAN on the data's labels."""
    config = resolved(f"tricks={tricks}")
    assert config["model.conditional"] is False
    assert config["model.generator.conditional"] is config["model.discriminator.conditional"]
    assert resolved("+variant=cgan")["model.conditional"] is True  # labels, asked for
    assert "tricks.self_cond._target_" not in resolved("+variant=cgan")


def test_study_sweeps_every_variant_over_three_seeds_at_one_budget(tmp_path):
    cfg = compose_config("train", ["+study=tutorial"], run_dir=tmp_path)
    params = cfg.hydra.sweeper.params
    # every variant is in the tutorial's study, or in the unlabelled-digits screen (study=digits,
    # which names its variants on the command line); the baseline is in both
    tutorial = set(params["+variant"].split(","))
    digits_text = (Path(CONF_DIR) / "study" / "digits.yaml").read_text()
    digits = {v for v in VARIANTS if f"conf/variant/{v}.yaml" in digits_text}
    assert tutorial | digits == set(VARIANTS) and tutorial & digits == set()
    assert params["seed"] == "0,1,2"
    assert list(params)[0] == "seed"    # seeds outermost: seed 0 of every variant comes first
    assert "job.num" not in cfg.hydra.sweep.subdir  # folders survive a longer variant list
    assert (cfg.budget.kind, cfg.budget.value) == ("time", 180)
    assert cfg.optim.lr_g == 1.7e-3 and "self_cond" not in cfg.tricks  # the recipe it measured
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert cfg.hydra.sweep.dir == "outputs/study/tutorial"  # fixed: a rerun skips or resumes jobs


@pytest.mark.parametrize("recipe", ["default", "unconditional"])
@pytest.mark.parametrize("loss", ["hinge", "lsgan"])
def test_a_loss_option_changes_only_the_loss(recipe, loss):
    """A loss sweep is not an optimizer sweep: the recipe's Adam stays."""
    default = composed(f"recipe={recipe}")
    config = composed(f"recipe={recipe}", f"loss={loss}")
    changed = sorted(k for k in set(default) | set(config) if default.get(k) != config.get(k))
    assert changed and all(under(k, "loss") for k in changed), changed


@pytest.mark.parametrize("recipe", ["default", "unconditional"])
def test_the_recipe_file_states_the_composed_recipe(recipe):
    """conf/recipe/<name>.yaml names every option it picks and what each brings: its
    statements must be the composed values, so the one file reads true."""
    default = resolved(f"recipe={recipe}")
    text = (Path(CONF_DIR) / "recipe" / f"{recipe}.yaml").read_text()
    statement = re.compile(r"((?:data|model|optim|loss|tricks|trainer)(?:\.\w+)+): "
                           r"([^,(]+?)(?=,|\s\(|\s{2}|$)")
    stated = {key: yaml.safe_load(value) for line in text.splitlines() if line.startswith("#")
              for key, value in statement.findall(line)}
    assert len(stated) >= 10, stated
    assert {k: default[k] for k in stated} == stated
    # the numbers the recipe owns: all three in the default; lr only in the unconditional one,
    # which is the default recipe with its TTUR
    owned = {"default": {"lr_g", "lr_d", "betas"}, "unconditional": {"lr_g", "lr_d"}}[recipe]
    numbers = yaml.safe_load(text)["optim"]
    assert set(numbers) == owned
    assert {k: default[f"optim.{k}"] for k in numbers} == numbers
