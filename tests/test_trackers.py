"""`logger=`: TensorBoard, CSV, MLflow and W&B, alone or as a list. A sweep's jobs land in the
tracker grouped as gan.report groups them, read back with the tracker's own client or records."""

from __future__ import annotations

import struct
import sys

import pytest

from tests.conftest import FAST, TINY_MLP, run_module

SWEEP = [*FAST, *TINY_MLP, "loss=bce,hinge", "seed=0,1"]  # 2 variants x 2 seeds


def test_unknown_logger_lists_the_loggers(tmp_path, run_main):
    for choice in ("logger=nope", "logger=[tensorboard,nope]"):
        code, out, err = run_main("gan.train", *FAST, choice, f"hydra.run.dir={tmp_path}",
                                  cwd=tmp_path)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "logger= takes csv, mlflow, tensorboard, wandb" in err


def test_a_list_combines_loggers_and_csv_gets_the_scalars(tmp_path, run_main):
    code, _, err = run_main("gan.train", *FAST, *TINY_MLP, "logger=[tensorboard,csv]",
                            f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert code == 0, err
    assert list(tmp_path.glob("events.out.tfevents.*"))
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/d_loss" in header and "final/g_loss" in header
    assert "seed" in (tmp_path / "csv" / "hparams.yaml").read_text()


@pytest.mark.parametrize("name,package", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_not_installed_says_how_to_install_it(tmp_path, run_main, monkeypatch,
                                                        name, package):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    code, _, err = run_main("gan.train", *FAST, f"logger={name}", f"hydra.run.dir={tmp_path}",
                            cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"pip install '.[{name}]'" in err


def test_an_unreachable_mlflow_server_fails_before_training(tmp_path, run_main):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    code, _, err = run_main("gan.train", *FAST, "logger=mlflow",
                            "logger.mlflow.tracking_uri=http://127.0.0.1:9",
                            f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach 127.0.0.1:9" in err
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


@pytest.mark.slow  # 4 jobs in one process with MLflow's SQLite store: 33 s on 2 busy cores
def test_a_sweep_is_one_mlflow_experiment_tagged_by_group_and_seed(tmp_path, run_main):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    code, _, err = run_main("gan.train", "-m", *SWEEP, "logger=[tensorboard,mlflow]",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert code == 0, err
    client = MlflowClient(f"sqlite:///{sweep / 'mlflow.db'}")
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert [e.name for e in experiments] == ["sweep"]
    runs = client.search_runs([experiments[0].experiment_id])
    assert sorted((r.data.tags["group"], r.data.tags["seed"]) for r in runs) == [
        ("loss=bce", "0"), ("loss=bce", "1"), ("loss=hinge", "0"), ("loss=hinge", "1")]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params == {"loss": run.data.tags["group"][5:],
                                   "seed": run.data.tags["seed"]}
        assert {"train/d_loss", "final/g_loss"} <= set(run.data.metrics)
        images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
        assert any("fixed_noise" in path and path.endswith(".png") for path in images)
    assert len(list(sweep.glob("*/events.out.tfevents.*"))) == 4  # TensorBoard as before


def wandb_records(path):
    """The records of an offline run's `.wandb` file, parsed with wandb's own protobuf classes
    (the file is a LevelDB-style log: 7-byte header, 32 KiB blocks, records split across
    blocks as FULL=1, FIRST=2, MIDDLE=3, LAST=4)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, parts = 7, b""
    while offset + 7 <= len(data):
        if 32768 - offset % 32768 < 7:  # a block's trailer
            offset += 32768 - offset % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + 7])
        parts += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


@pytest.mark.slow  # 4 W&B offline runs (each starts wandb's service): 20-29 s on 2 busy cores
def test_a_sweep_is_one_wandb_group_offline(tmp_path, run_main, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))  # not logged in
    monkeypatch.setenv("HOME", str(tmp_path))
    sweep = tmp_path / "sweep"
    code, out, err = run_main("gan.train", "-m", *SWEEP, "logger=wandb",
                              f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert code == 0, err
    assert (out + err).count("W&B: offline; this run is stored in") == 4
    runs = {}
    for path in sweep.glob("*/wandb/offline-run-*/run-*.wandb"):
        records = list(wandb_records(path))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {i.key: i.value_json for r in records if r.WhichOneof("record_type") == "config"
                  for i in r.config.update}
        logged = {i.key or "/".join(i.nested_key) for r in records
                  if r.WhichOneof("record_type") == "history" for i in r.history.item}
        runs[run.display_name] = (run.run_group, run.job_type, config["seed"])
        assert {"train/d_loss", "final/g_loss", "samples/fixed_noise/_type"} <= logged
        assert list(path.parent.glob("files/media/images/samples/fixed_noise_*.png"))
    assert sorted(runs.values()) == [("sweep", "loss=bce", "0"), ("sweep", "loss=bce", "1"),
                                     ("sweep", "loss=hinge", "0"), ("sweep", "loss=hinge", "1")]


@pytest.mark.slow  # a real process that starts wandb's service: ~23 s on 2 busy cores
def test_wandb_offline_says_where_a_single_run_is(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    proc = run_module("gan.train", *FAST, *TINY_MLP, "logger=wandb", "hydra.run.dir=run",
                      cwd=tmp_path)
    said = f"W&B: offline; this run is stored in {tmp_path / 'run'}/wandb/"
    assert said in proc.stdout + proc.stderr
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
