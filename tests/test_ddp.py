"""`trainer=ddp` on 2 CPU processes (gloo): G and D each step alone, which plain `ddp` rejects
(unused parameters, Lightning #20328); the config's find_unused strategy must train and keep
both ranks' weights identical. Slow (two processes start): pytest -m slow."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST, REPO, needs_mnist, run_module

pytestmark = pytest.mark.slow


def test_ddp_two_cpu_processes_stay_in_sync(tmp_path):
    run_module("gan.train", *FAST, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
               "model=mlp", "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
               "tricks=[ema]", f"hydra.run.dir={tmp_path / 'run'}",
               "+callbacks.dump._target_=tests.ddp_dump.DumpPerRank",
               f"+callbacks.dump.out={tmp_path / 'dump'}", cwd=tmp_path, timeout=300,
               env={"PYTHONPATH": str(REPO)})
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    # 128 images / 2 ranks / batch 16 = 4 batches per rank
    assert ckpt["gan_counters"] == {"d_step": 4, "g_step": 4}
    assert any(k.startswith("trick_state.ema.") for k in ckpt["state_dict"])
    ranks = [torch.load(tmp_path / "dump" / f"rank{r}.pt") for r in (0, 1)]
    for key, value in ranks[0]["d"].items():  # gradients were all-reduced: same D everywhere
        assert torch.equal(value, ranks[1]["d"][key]), key
    assert not torch.equal(ranks[0]["z"], ranks[1]["z"])  # but each rank drew its own noise


@needs_mnist
def test_ddp_metrics_are_scored_on_rank_0_and_broadcast(tmp_path):
    run_module("gan.train", *[o for o in FAST if not o.startswith("data")], "data=mnist",
               "data.batch_size=32", "trainer.limit_train_batches=4", "trainer=ddp",
               "trainer.accelerator=cpu", "trainer.devices=2", "model=mlp",
               "model.generator.hidden=[32]", "model.discriminator.hidden=[32]",
               "callbacks.metrics.n=200", "callbacks.metrics.n_final=200",
               f"hydra.run.dir={tmp_path / 'run'}",
               "+callbacks.count._target_=tests.ddp_dump.CountScores",
               f"+callbacks.count.out={tmp_path / 'dump'}", cwd=tmp_path, timeout=600,
               env={"PYTHONPATH": str(REPO)})
    ranks = [torch.load(tmp_path / "dump" / f"scores{r}.pt") for r in (0, 1)]
    assert ranks[0]["calls"] == 2  # the epoch's evaluation and the final one
    assert ranks[1]["calls"] == 0  # rank 1 scores nothing
    assert "val/fid" in ranks[0]["logged"]
    assert ranks[1]["logged"] == ranks[0]["logged"]  # and logs rank 0's values
