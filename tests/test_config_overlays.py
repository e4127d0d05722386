"""Config overlays stay small: each optimizer number has one home (conf/recipe/default.yaml), and
every other file that sets one (a recipe, variant or experiment) sets a value that differs from
what it would otherwise get. The composed values users train with are pinned, so a move of a
number between files cannot change a run unnoticed. Checked by composing, not by training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from gan.io.config import CONF_DIR
from tests.conftest import compose, compose_config

CONF = Path(CONF_DIR)
NUMBERS = ("lr_g", "lr_d", "betas")
# Who sets each optimizer number: the default recipe (the one home), and the overlays whose value
# differs from what they would otherwise get (each says why in a comment). A new file here must
# be a real difference: test_an_overlay_sets_only_what_it_changes checks it.
SETTERS = {
    "lr_g": {"recipe/default", "recipe/unconditional", "variant/equal_lr", "variant/info_w01",
             "variant/wgan", "variant/wgan_gp", "experiment/sagan_hinge_sn_ema"},
    "lr_d": {"recipe/default", "recipe/unconditional", "variant/equal_lr", "variant/info_w01",
             "variant/wgan", "variant/wgan_gp"},
    "betas": {"recipe/default", "variant/info_w01", "variant/wgan_gp",
              "experiment/sagan_hinge_sn_ema", "experiment/cdcgan_projection",
              "experiment/seed", "experiment/resnet_hinge_sn"},
}


def optim_node(path: Path) -> dict:
    """What a conf file puts under `optim`: the whole file in conf/optim/, else its `optim:`."""
    data = yaml.safe_load(path.read_text()) or {}
    if path.parent.name == "optim":
        return data
    return (data.get("optim") or {}) if "# @package _global_" in path.read_text() else {}


def setters(key: str) -> set[str]:
    """conf files that set optim.<key> to a value (not an interpolation)."""
    out = set()
    for path in CONF.rglob("*.yaml"):
        value = optim_node(path).get(key)
        if value is not None and not (isinstance(value, str) and "${" in value):
            out.add(str(path.relative_to(CONF).with_suffix("")))
    return out


@pytest.mark.parametrize("key", NUMBERS)
def test_each_optimizer_number_has_one_home(key):
    assert setters(key) == SETTERS[key]
    assert not any(s.startswith("optim/") for s in setters(key))  # the recipe's, for any optimizer


def flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict) and node:
        out = {}
        for k, v in node.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): node}


def values(*overrides: str) -> dict:
    cfg = compose("train", *overrides)
    parts = ("data", "model", "optim", "loss", "tricks")  # (trainer's paths need a run dir)
    out = flat({k: OmegaConf.to_container(cfg[k], resolve=True) for k in parts if k in cfg})
    return {**out, "trainer.max_epochs": cfg.trainer.max_epochs}


# An overlay against what it would get without it: a variant on the studies' recipe, an
# experiment or a recipe on the default.
BASE = {"variant": (["recipe=unconditional"], "+variant={}"), "experiment": ([], "experiment={}"),
        "recipe": ([], "recipe={}")}


@pytest.mark.parametrize("setter", sorted(set().union(*SETTERS.values()) - {"recipe/default"}))
def test_an_overlay_sets_only_what_it_changes(setter):
    group, name = setter.split("/")
    base, option = BASE[group]
    without, with_ = values(*base), values(*base, option.format(name))
    for key in NUMBERS:
        if setter in SETTERS[key]:
            assert with_[f"optim.{key}"] != without[f"optim.{key}"], (setter, key)


# The numbers users train with, as they were before the overlays shrank (issue 27).
PINNED = {
    # issue 29 moved the default to lr 4e-4 at batch 64 for 8 epochs (docs/digits/levers.md)
    (): {"optim.lr_g": 4e-4, "optim.lr_d": 4e-4, "optim.betas": [0.4, 0.999],
         "optim.generator._target_": "torch.optim.Adam", "optim.fused": True,
         "optim.weight_decay": 0.0, "model.conditional": True, "data.batch_size": 64,
         "trainer.max_epochs": 8},
    ("recipe=unconditional",): {"optim.lr_g": 1.7e-3, "optim.lr_d": 7e-5,
                                "optim.betas": [0.4, 0.999], "model.conditional": False,
                                "data.batch_size": 32, "trainer.max_epochs": 4},
    ("optim=rmsprop",): {"optim.generator.lr": 4e-4, "optim.discriminator.lr": 4e-4,
                         "optim.alpha": 0.99, "optim.generator._target_": "torch.optim.RMSprop"},
    ("optim=adamw",): {"optim.generator.lr": 4e-4, "optim.generator.betas": [0.4, 0.999],
                       "optim.generator.weight_decay": 0.01, "optim.generator.fused": True,
                       "optim.generator._target_": "torch.optim.AdamW"},
    ("model=sagan",): {"optim.lr_g": 4e-4, "optim.lr_d": 4e-4, "optim.betas": [0.4, 0.999]},
    ("loss=wgan_gp",): {"optim.lr_g": 4e-4, "optim.betas": [0.4, 0.999],
                        "model.discriminator.norm": "layer"},
    ("experiment=sagan_hinge_sn_ema",): {"optim.lr_g": 1e-4, "optim.lr_d": 4e-4,
                                         "optim.betas": [0.0, 0.9], "data.batch_size": 32},
    ("experiment=dcgan_wgan",): {"optim.generator._target_": "torch.optim.RMSprop",
                                 "optim.lr_g": 5e-5, "optim.lr_d": 5e-5, "loss.clip": 0.01,
                                 "trainer.max_epochs": 30},
    ("experiment=dcgan_wgan_gp",): {"optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "loss.n_critic": 5,
                                    "optim.betas": [0.0, 0.9], "loss.gp_weight": 10.0,
                                    "model.discriminator.norm": "layer",
                                    "trainer.max_epochs": 30},
    ("experiment=cdcgan_projection",): {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4,
                                        "optim.betas": [0.5, 0.999], "model.conditional": True,
                                        "model.generator.width": 32,
                                        "model.discriminator.width": 32,
                                        "data.batch_size": 64},
    ("experiment=resnet_hinge_sn",): {"optim.lr_g": 2e-4, "optim.betas": [0.0, 0.9],
                                      "data.batch_size": 32},
    ("experiment=seed",): {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4, "optim.betas": [0.9, 0.999],
                           "model.generator._target_": "gan.networks.mlp.Generator"},
    ("recipe=unconditional", "+variant=rmsprop"): {"optim.generator.lr": 1.7e-3,
                                                   "optim.discriminator.lr": 7e-5},
    ("recipe=unconditional", "+variant=wgan"): {"optim.lr_g": 5e-5, "optim.lr_d": 5e-5},
    ("recipe=unconditional", "+variant=cgan"): {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4,
                                                "model.conditional": True},
    ("recipe=unconditional", "+variant=info_w1"): {"optim.lr_g": 1e-3, "optim.lr_d": 2e-4,
                                                   "optim.betas": [0.5, 0.999],
                                                   "tricks.info.weight": 1.0},
    ("recipe=unconditional", "+variant=self_cond_mog"): {"optim.lr_g": 2e-4,
                                                         "model.conditional": True,
                                                         "tricks.self_cond.clusters": 50},
    ("tricks=[ema]",): {"model.conditional": False},
    ("tricks=[ema]", "model.conditional=true"): {"model.conditional": True},
}


@pytest.mark.parametrize("overrides", list(PINNED), ids=lambda o: " ".join(o) or "default")
def test_the_composed_numbers_are_pinned(overrides):
    got = values(*overrides)
    assert {k: got.get(k, "<absent>") for k in PINNED[overrides]} == PINNED[overrides]


def test_the_search_spaces_are_pinned(tmp_path):
    spaces = {}
    for name in ("optuna", "default_recipe"):
        cfg = compose_config("train", [f"hparams_search={name}"], run_dir=tmp_path)
        spaces[name] = OmegaConf.to_container(cfg.hydra.sweeper.params)
        GlobalHydra.instance().clear()
    assert {k: v for k, v in spaces["optuna"].items() if k.startswith("optim.")} == {
        "optim.lr_g": "tag(log, interval(1e-5, 2e-3))",
        "optim.lr_d": "tag(log, interval(1e-5, 2e-3))",
        "optim.betas.0": "interval(0.0, 0.9)"}
    assert {k: v for k, v in spaces["default_recipe"].items() if k.startswith("optim.")} == {
        "optim.lr_g": "tag(log, interval(5e-5, 3e-3))",
        "optim.lr_d": "tag(log, interval(2e-5, 1e-3))",
        "optim.betas.0": "interval(0.0, 0.9)",
        "optim.betas.1": "choice(0.9, 0.99, 0.999)"}


def test_no_conf_file_decides_by_resolver():
    """model.conditional comes from a file (conf/tricks/self_cond.yaml), not a resolver that
    inspects the composed config."""
    assert not [p for p in CONF.rglob("*.yaml") if "trick_on" in p.read_text()]
