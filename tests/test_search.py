"""The Optuna search (hydra_plugins/gan_optuna_sweeper + gan/sweeps): its space as the search
configs write it, the conditional trick knobs, trial outcomes (seeds, pruned, failed), pruning
from a run's evaluations, queueing a trial (`gan.search`), and searches run as a user runs them:
two workers on one journal file, a pruned trial, failing trials."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from gan.io.artefacts import read_status
from gan.io.config import CONF_DIR
from gan.sweeps.pruning import Pruned, ReportToTrial
from gan.sweeps.report import make_report
from gan.sweeps.search import chosen_tricks, trick_knobs
from gan.sweeps.space import parse_space
from gan.sweeps.storage import load_study, open_storage, storage_url
from gan.sweeps.trials import job_overrides, trial_outcome
from tests.conftest import FAST, REPO, child_env, run_module

TINY = [*FAST, "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
        "callbacks.interpolation=null", "callbacks.samples=null"]


def compose_train(*overrides: str, hydra: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture(scope="module")
def search():
    cfg = compose_train("hparams_search=default_recipe", hydra=True)
    yield cfg
    GlobalHydra.instance().clear()


def test_space_holds_the_knobs_that_matter(search):
    knobs = {"optim.lr_g", "optim.lr_d", "optim.betas.0", "optim.betas.1", "data.batch_size",
             "model.generator.width", "model.discriminator.width", "loss", "tricks"}
    space, fixed = parse_space(search.hydra.sweeper.params, [])
    assert knobs <= set(space) and fixed == {}
    assert set(space["loss"].choices) == {"bce", "hinge", "lsgan", "wgan_gp"}
    assert space["optim.lr_g"] == FloatDistribution(5e-5, 3e-3, log=True)
    assert search.hydra.sweeper.n_trials >= 30
    assert (search.budget.kind, search.budget.value) == ("time", 180)
    assert search.hydra.sweeper.custom_search_space == "gan.sweeps.search.trick_knobs"
    assert search.hydra.sweeper._target_.endswith("GanOptunaSweeper")


def test_a_default_recipe_trial_composes_into_a_run(search, tmp_path):
    """The sweeper's first steps on the real search config: ask trials (flat space, then the
    trick knobs), turn each into job overrides that compose into a train config."""
    from hydra.utils import get_method

    from gan.sweeps.optuna_sweep import Search

    sweeper = search.hydra.sweeper
    run = Search(storage=storage_url(None, tmp_path), study_name="d", direction="minimize",
                 n_trials=4, n_jobs=1, sampler=sweeper.sampler, pruner=sweeper.pruner,
                 params=sweeper.params, seeds=2, first_seed=0,
                 conditional=get_method(sweeper.custom_search_space))
    study = run.create_study()
    space, fixed = parse_space(run.params, ["data=fake"])
    for _ in range(4):
        trial, jobs = run.ask(study, space, fixed, search)
        assert len(jobs) == 2 and "data=fake" in jobs[0]
        cfg = compose_train("hparams_search=default_recipe", *jobs[1])
        assert cfg.seed == 1 and cfg.hparams_search.trial == trial.number
        assert cfg.optim.lr_g == pytest.approx(trial.params["optim.lr_g"])
        if "r1" in chosen_tricks(trial.params["tricks"]):
            assert cfg.tricks.r1.gamma == pytest.approx(trial.params["tricks.r1.gamma"])
    GlobalHydra.instance().clear()


def test_space_syntax_and_command_line_overrides():
    params = {"a": "choice(1, 2.5, bce)", "b": "range(2, 8, 2)", "c": "interval(0, 1)",
              "d": "tag(log, interval(1e-4, 1e-2))", "e": "range(0.0, 1.0, 0.25)"}
    space, fixed = parse_space(params, ["c=0.3", "f=choice(x, y)"])
    assert space["a"] == CategoricalDistribution([1, 2.5, "bce"])
    assert space["b"] == IntDistribution(2, 6, step=2)             # stop excluded, as range()
    assert space["d"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["e"] == FloatDistribution(0.0, 0.75, step=0.25)
    assert "c" not in space and fixed == {"c": "0.3"}              # the command line fixes it
    assert space["f"] == CategoricalDistribution(["x", "y"])


def test_every_trick_list_is_a_valid_override(search):
    choices = parse_space(search.hydra.sweeper.params, [])[0]["tricks"].choices
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


def test_a_trial_is_one_job_per_seed_and_its_outcome_their_statistic():
    jobs = job_overrides({"optim.lr_g": 1e-3}, {"trial": 7}, seeds=3, first_seed=5)
    assert [j[-2:] for j in jobs] == [["seed=5", "++hparams_search.first_seed=5"],
                                      ["seed=6", "++hparams_search.first_seed=5"],
                                      ["seed=7", "++hparams_search.first_seed=5"]]
    assert all(j[:2] == ["optim.lr_g=0.001", "++hparams_search.trial=7"] for j in jobs)
    ok = [("ok", 10.0), ("ok", 20.0), ("ok", 60.0)]
    assert trial_outcome(ok, "mean")[:2] == (TrialState.COMPLETE, 30.0)
    assert trial_outcome(ok, "median")[:2] == (TrialState.COMPLETE, 20.0)
    assert trial_outcome(ok, "max")[:2] == (TrialState.COMPLETE, 60.0)
    assert trial_outcome([*ok[:2], ("failed", None)], "mean")[0] == TrialState.FAIL
    assert trial_outcome([("pruned", None), *ok[:2]], "mean")[0] == TrialState.PRUNED


def test_a_trial_that_cannot_start_fails_alone(tmp_path):
    """A knob value naming a config that does not exist makes the launcher raise for the whole
    round: the trial that holds it is told FAIL, the others of its round run."""
    from omegaconf import OmegaConf

    from gan.sweeps.optuna_sweep import Search

    class Launcher:
        def launch(self, jobs, initial_job_idx):
            if any("loss=nope" in job for job in jobs):
                raise ValueError("In 'train': Could not find 'loss/nope'")
            return [type("Return", (), {"return_value": 1.0})() for _ in jobs]

    sampler = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0})
    run = Search(storage=storage_url(None, tmp_path), study_name="s", direction="minimize",
                 n_trials=6, n_jobs=2, sampler=sampler, pruner=None,
                 params={"loss": "choice(bce, nope)"})
    study = run.run(Launcher(), [], OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    states = {t.number: (t.params["loss"], t.state) for t in study.trials}
    assert len(states) == 6 and {loss for loss, _ in states.values()} == {"bce", "nope"}
    assert all((state == TrialState.FAIL) == (loss == "nope") for loss, state in states.values())
    assert "FAIL" in (tmp_path / "optimization_results.yaml").read_text()


def test_a_dead_workers_trial_is_failed_and_its_knobs_asked_again(tmp_path):
    """A RUNNING trial whose heartbeat stopped (its worker was killed) is failed with a note
    and its knobs queued; a live one (fresh heartbeat) and a finished one are left alone."""
    from gan.sweeps.stale import HEARTBEAT, RETRY_OF, retry_stale

    study = optuna.create_study(study_name="s", storage=open_storage(storage_url(None, tmp_path)))
    dead, live = study.ask(), study.ask()
    for trial in (dead, live):
        trial.suggest_float("optim.lr_g", 1e-4, 1e-2, log=True)
    dead_lr = dead.params["optim.lr_g"]
    now = 10_000.0 + dead.datetime_start.timestamp()
    dead.set_user_attr(HEARTBEAT, now - 601)
    live.set_user_attr(HEARTBEAT, now - 30)
    done = study.ask()
    study.tell(done, 1.0)
    assert retry_stale(study, None, now=now) == []          # stale_after=null: never
    assert retry_stale(study, 600, now=now) == [dead.number]
    trials = load_study(storage_url(None, tmp_path), "s").get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["outcome"].startswith("stale: no heartbeat for 601 s")
    assert trials[live.number].state == TrialState.RUNNING
    retry = [t for t in trials if t.user_attrs.get(RETRY_OF) == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    asked = study.ask()  # the next ask of any worker measures the dead trial's knobs
    assert asked.number == retry[0].number
    assert asked.suggest_float("optim.lr_g", 1e-4, 1e-2, log=True) == dead_lr
    study.tell(asked, 2.0)
    # a trial from before heartbeats counts from its start; nothing is retried twice
    old = study.ask()
    assert retry_stale(study, 600, now=now) == [old.number]
    assert retry_stale(study, 600, now=now) == []
    assert sum(t.user_attrs.get(RETRY_OF) == dead.number for t in study.get_trials()) == 1


def test_the_heartbeat_stamps_while_the_round_runs_and_stops_after(tmp_path):
    import time

    from gan.sweeps.stale import HEARTBEAT, Heartbeat

    study = optuna.create_study(study_name="s", storage=open_storage(storage_url(None, tmp_path)))
    trial = study.ask()
    with Heartbeat([trial], interval=0.05):
        first = load_study(storage_url(None, tmp_path), "s").trials[0].user_attrs[HEARTBEAT]
        time.sleep(0.3)
        later = load_study(storage_url(None, tmp_path), "s").trials[0].user_attrs[HEARTBEAT]
    assert later > first  # stamped on entry, then again from the thread
    time.sleep(0.2)
    assert load_study(storage_url(None, tmp_path), "s").trials[0].user_attrs[HEARTBEAT] == later
    with Heartbeat([trial], interval=None):  # stale_after=null: no thread, no stamp
        pass
    assert study.trials[0].user_attrs[HEARTBEAT] == later


def test_a_resumed_search_retries_what_the_killed_one_left_running(search, tmp_path):
    """The same command again, after a worker died mid-round: the dead trial is failed and
    measured again under a new number before the search asks new knobs."""
    from omegaconf import OmegaConf

    from gan.sweeps.optuna_sweep import Search
    from gan.sweeps.stale import HEARTBEAT, RETRY_OF

    class Launcher:
        def launch(self, jobs, initial_job_idx):
            return [type("Return", (), {"return_value": 1.0})() for _ in jobs]

    def searcher(n_trials):
        sampler = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0})
        return Search(storage=storage_url(None, tmp_path), study_name="s", direction="minimize",
                      n_trials=n_trials, n_jobs=1, sampler=sampler, pruner=None,
                      params={"optim.lr_g": "interval(1e-4, 1e-2)"}, stale_after=60)

    study = searcher(1).create_study()
    killed = study.ask()  # what a worker asked before it was killed
    lr = killed.suggest_float("optim.lr_g", 1e-4, 1e-2)
    killed.set_user_attr(HEARTBEAT, 0.0)
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    trials = searcher(2).run(Launcher(), [], cfg).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[1].user_attrs[RETRY_OF] == 0 and trials[1].params["optim.lr_g"] == lr
    assert trials[2].params["optim.lr_g"] != lr
    assert search.hydra.sweeper.stale_after == 600  # on by default, as the sweeper config has it


def curve_row(path, value):
    new = not path.is_file()
    with path.open("a") as f:
        f.write("wall_s,images_seen,val/fid\n" if new else "")
        f.write(f"1.0,100,{value}\n")


def test_each_evaluation_is_reported_and_a_hopeless_trial_pruned(tmp_path):
    """The run's callback reports every curve.csv row to its trial through the journal file
    (as a job in another process would) and raises Pruned when the pruner says so."""
    url = storage_url(None, tmp_path)
    pruner = optuna.pruners.ThresholdPruner(upper=100.0)
    study = optuna.create_study(study_name="s", storage=open_storage(url), pruner=pruner)
    number = study.ask().number
    callback = ReportToTrial(url, "s", number, "val/fid", pruner=pruner, seeds=2, seed=4,
                             first_seed=3)

    class Trainer:
        default_root_dir = str(tmp_path)

    curve = tmp_path / "curve.csv"
    for value in (80.0, 60.0):
        curve_row(curve, value)
        callback.on_train_batch_end(Trainer(), None, None, None, 0)
    callback.on_train_batch_end(Trainer(), None, None, None, 1)  # no new row: nothing told
    curve_row(curve, 150.0)
    with pytest.raises(Pruned, match="pruned at step 5"):
        callback.on_train_epoch_end(Trainer(), None)
    # seed 1 of 2 reports evaluation e at step 2e + 1
    stored = load_study(url, "s").trials[number].intermediate_values
    assert stored == {1: 80.0, 3: 60.0, 5: 150.0}
    assert not ReportToTrial(url, "s", None, "val/fid").active  # not a search's job: inert


def test_gan_search_queues_a_trial_and_refuses_bad_input(tmp_path, run_main):
    sweep = tmp_path / "opt"
    args = ["hparams_search=optuna", f"hydra.sweep.dir={sweep}", "hydra.sweeper.study_name=s"]
    code, _, err = run_main("gan.search", *args, "optim.lr_g=1e-4", cwd=tmp_path)
    assert code == 2 and err.strip().splitlines()[-1].startswith("gan.search: no study at")
    optuna.create_study(study_name="other", storage=open_storage(storage_url(None, sweep)))
    code, _, err = run_main("gan.search", *args, "optim.lr_g=1e-4", cwd=tmp_path)
    assert code == 2 and "no study 's'" in err and "other" in err and len(err.splitlines()) == 1
    code, _, err = run_main("gan.search", *args, "optim.lr_x=1e-4", cwd=tmp_path)
    assert code == 2 and "optim.lr_x not in the search space" in err
    optuna.create_study(study_name="s", storage=open_storage(storage_url(None, sweep)))
    # the search's own settings (a seed-averaged search) compose the config, they are no knobs
    code, out, _ = run_main("gan.search", *args, "hparams_search.seeds=3", "optim.lr_g=0.0008",
                            "data.batch_size=64", cwd=tmp_path)
    assert code == 0 and "queued" in out
    trial = load_study(storage_url(None, sweep), "s").ask()  # as the sweeper asks
    assert trial.suggest_float("optim.lr_g", 1e-5, 2e-3, log=True) == 8e-4
    assert trial.suggest_categorical("data.batch_size", [32, 64, 128]) == 64


def test_search_workers_on_one_box_take_a_gpu_each(tmp_path, monkeypatch):
    """N `gan.train -m hparams_search=...` workers on one sweep dir run their trials with the
    basic launcher: each trial still claims a GPU no other worker's trial holds."""
    import torch
    from omegaconf import OmegaConf

    from gan.runs.resources import job_resources

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    basic = OmegaConf.create({"launcher": {"_target_": "hydra.BasicLauncher"}})
    cfg = OmegaConf.create({"threads": None, "trainer": {"accelerator": "auto", "devices": 1}})
    with job_resources(cfg, basic, tmp_path) as a, job_resources(cfg, basic, tmp_path) as b:
        assert [a, b] == [{"devices": [0]}, {"devices": [1]}]


# ---- searches run as a user runs them ---------------------------------------------------------

def search_args(sweep, *extra: str) -> list[str]:
    return ["-m", "hparams_search=optuna", *TINY, "metric=train/g_loss",
            f"hydra.sweep.dir={sweep}", "hydra.sweeper.study_name=t", *extra]


def trials_of(sweep) -> list:
    return load_study(storage_url(None, sweep), "t").get_trials()


def run_dirs(sweep) -> list:
    return sorted(p.parent.parent for p in sweep.glob("*/.hydra/config.yaml"))


@pytest.mark.slow
def test_two_workers_on_one_journal_run_every_trial_once(tmp_path):
    sweep = tmp_path / "opt"
    cmd = [sys.executable, "-m", "gan.train",
           *search_args(sweep, "budget=g_steps", "budget.value=2", "hydra.sweeper.n_trials=2")]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(logs)
    trials = trials_of(sweep)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE and math.isfinite(t.value) for t in trials)
    # one run folder per trial, named by its number; distinct knobs (the sampler is seeded
    # per trial number, so workers started together do not draw the same ones)
    assert sorted(int(d.name.split("_")[0]) for d in run_dirs(sweep)) == [0, 1, 2, 3]
    assert len({t.params["optim.lr_g"] for t in trials}) == 4
    report = make_report([sweep])                    # gan.report ranks the trials
    assert len(report.runs) == 4 and "optim.lr_g" in report.differ
    # the same command again resumes the study
    run_module("gan.train", *search_args(sweep, "budget=g_steps", "budget.value=2",
                                         "hydra.sweeper.n_trials=1"), cwd=tmp_path)
    assert sorted(t.number for t in trials_of(sweep)) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_pruned_trials_are_recorded_as_pruned(tmp_path):
    sweep = tmp_path / "opt"
    # G's loss is above 0 after the first epoch: the threshold pruner stops every trial there
    run_module("gan.train", *search_args(sweep, "trainer.max_epochs=3", "hydra.sweeper.n_trials=2",
                                         "hydra/sweeper/pruner=threshold",
                                         "hydra.sweeper.pruner.upper=0"), cwd=tmp_path)
    trials = trials_of(sweep)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [0] for t in trials)
    for run in run_dirs(sweep):
        status = read_status(run)
        assert status["status"] == "pruned" and status["epoch"] == 0, status
    results = (sweep / "optimization_results.yaml").read_text()
    assert "PRUNED: 2" in results


@pytest.mark.slow
def test_failing_trials_are_told_fail_and_the_search_goes_on(tmp_path):
    sweep = tmp_path / "opt"
    proc = run_module("gan.train", *search_args(sweep, "budget=g_steps", "budget.value=2",
                                                "hydra.sweeper.n_trials=2",
                                                "hparams_search.seeds=2",
                                                "optim.lr_g=choice(-1.0)"),
                      cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr  # the sweep says jobs failed, after all ran
    trials = trials_of(sweep)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["outcome"] == "failed (2 of 2 seeds)" for t in trials)
    assert len(run_dirs(sweep)) == 4                 # 2 trials x 2 seeds, each ran
    assert {read_status(d)["status"] for d in run_dirs(sweep)} == {"failed"}
    # gan.report: one group per trial, holding its seeds (configs differ in `seed` alone)
    assert [len(g.runs) for g in make_report([sweep]).groups] == [2, 2]
    assert "FAIL: 2" in (sweep / "optimization_results.yaml").read_text()


def test_the_plugin_ships_with_the_package():
    text = (REPO / "pyproject.toml").read_text()
    assert '"hydra_plugins*"' in text and "optuna>=4" in text
    sweep = text.split("\nsweep = [", 1)[1].split("]", 1)[0]  # the search: a journal file, no DB
    assert "hydra-optuna-sweeper" not in text and "sqlalchemy" not in sweep.lower()


# TPESampler's arguments that are callables, deprecated (to go in Optuna 6) or only warn
NOT_CHOICES = {"self", "gamma", "weights", "constraints_func", "warn_independent_sampling",
               "consider_prior", "prior_weight", "consider_magic_clip", "consider_endpoints"}


@pytest.mark.parametrize("search", ["optuna", "default_recipe"])
def test_the_search_states_its_sampler_and_pruner(search):
    """The installed Optuna's defaults decide nothing: every TPE choice is in the config (a
    new TPESampler argument fails here until it is stated), and the sampler built from it is
    multivariate with constant liar on Optuna 4 as on 5."""
    import inspect

    from gan.cli.runner import compose_config
    from gan.io.config import build

    sweeper = compose_config("train", [f"hparams_search={search}"], hydra=True).hydra.sweeper
    arguments = set(inspect.signature(optuna.samplers.TPESampler.__init__).parameters)
    assert arguments - NOT_CHOICES <= set(sweeper.sampler) - {"_target_"}
    sampler = build(sweeper.sampler)
    assert sampler._multivariate is True and sampler._constant_liar is True
    assert sweeper.sampler.seed is not None and sweeper.pruner._target_.endswith("MedianPruner")
    assert build(sweeper.pruner)._n_min_trials == sweeper.pruner.n_min_trials
