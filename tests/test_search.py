"""The search that chose the default recipe (conf/hparams_search/default_recipe.yaml): its space
holds the knobs issue #8 names, each trick list is a valid `tricks=` override, and a trick's own
knobs are searched only in the trials that turned the trick on (gan/search.py)."""

from __future__ import annotations

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

from gan.io.config import CONF_DIR
from gan.sweeps.search import chosen_tricks, trick_knobs


def compose_train(*overrides: str, hydra: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture(scope="module")
def search():
    cfg = compose_train("hparams_search=default_recipe", hydra=True)
    yield cfg
    GlobalHydra.instance().clear()


def space(search) -> dict:
    parser = OverridesParser.create()
    return {key: create_optuna_distribution_from_override(parser.parse_override(f"{key}={value}"))
            for key, value in search.hydra.sweeper.params.items()}


def test_space_holds_the_knobs_that_matter(search):
    knobs = {"optim.lr_g", "optim.lr_d", "optim.betas.0", "optim.betas.1", "data.batch_size",
             "model.generator.width", "model.discriminator.width", "loss", "tricks"}
    assert knobs <= set(search.hydra.sweeper.params)
    assert set(space(search)["loss"].choices) == {"bce", "hinge", "lsgan", "wgan_gp"}
    assert search.hydra.sweeper.n_trials >= 30
    assert (search.budget.kind, search.budget.value) == ("time", 180)
    assert search.hydra.sweeper.custom_search_space == "gan.sweeps.search.trick_knobs"


def test_every_trick_list_is_a_valid_override(search):
    choices = space(search)["tricks"].choices
    assert {"ema", "r1", "diffaugment"} == {t for c in choices for t in chosen_tricks(c)}
    for choice in choices:
        cfg = compose_train(f"tricks={choice}")
        assert sorted(cfg.get("tricks") or {}) == sorted(chosen_tricks(choice)), choice


@pytest.mark.parametrize("tricks, extra", [
    ("[ema,r1]", {"tricks.r1.gamma", "tricks.ema.decay"}),
    ("[r1,diffaugment]", {"tricks.r1.gamma"}),
    ("[diffaugment]", set()),
    ("[]", set()),
])
def test_trick_knobs_only_when_the_trick_is_on(tricks, extra):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    trial.suggest_categorical("tricks", [tricks])
    trick_knobs(None, trial)
    assert set(trial.params) - {"tricks"} == extra
    if "tricks.r1.gamma" in extra:
        assert 0.01 <= trial.params["tricks.r1.gamma"] <= 10
        # the override the sweeper writes composes into that R1 weight
        gamma = trial.params["tricks.r1.gamma"]
        cfg = compose_train(f"tricks={tricks}", f"tricks.r1.gamma={gamma}")
        assert cfg.tricks.r1.gamma == pytest.approx(gamma)
    GlobalHydra.instance().clear()


def test_enqueued_trial_runs_first_with_its_values(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    from gan.sweeps.search import enqueue, parse_value

    values = {k: parse_value(v) for k, v in
              {"optim.lr_g": "0.0008", "data.batch_size": "64", "tricks": "[ema]"}.items()}
    assert values == {"optim.lr_g": 8e-4, "data.batch_size": 64, "tricks": "[ema]"}
    enqueue(storage, "s", values)
    trial = study.ask()  # as the sweeper asks: the queued values come back for its space
    assert trial.suggest_float("optim.lr_g", 5e-5, 3e-3, log=True) == 8e-4
    assert trial.suggest_categorical("data.batch_size", [32, 64, 128]) == 64
    assert trial.suggest_categorical("tricks", ["[]", "[ema]"]) == "[ema]"
