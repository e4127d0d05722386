"""Training speed side by side, in one process and on one device:

    python -m gan.bench                                  # MLP (seed) and DCGAN (default recipe)
    python -m gan.bench steps=50 repeats=1 devices=[cpu] # a quick look
    python -m gan.bench '+variants.unfused=["optim.fused=null"]'   # what one switch buys

(a) tutorial: the tutorial's loop as written: torchvision's MNIST through a DataLoader with
    per-sample PIL transforms (ToTensor, Normalize), D ending in Sigmoid with BCELoss, Adam as
    PyTorch defaults it (single-tensor on the CPU), batch 64. For `model=mlp` the tutorial's own
    MLP, written out below; for other models the same loop around our nets (Sigmoid on D's
    logit) with the recipe's learning rates and betas.
(b) bare: a plain PyTorch loop over our resident data (gan.data.images.ShuffledBatches) with our nets,
    loss and optimizers, built by gan.runs.wiring.build_module: the same math as (c), no framework.
(c) lightning: our training step through Trainer.fit, built as `gan.train` builds it, with the
    user's default callbacks (progress bar, TensorBoard logger, throughput, grids, checkpoints),
    except the metrics callback. Grids and checkpoints run at epoch ends, outside the timed window.

Each loop runs `warmup` untimed steps, then `steps` timed ones, each step one batch: a D step
and (every n_critic batches) a G step. The loops run interleaved, (a) (b) (c) per repeat, so
machine noise hits all alike; the table gives the median over `repeats`. Read the ratios: they
compare loops measured in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from gan.io.config import CONF_DIR
from gan.runs.bench import HEADER, rows, run


def main(argv: list[str] | None = None) -> list[dict]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        bench = compose("bench", overrides=list(sys.argv[1:] if argv is None else argv))
    print(f"{torch.get_num_threads() if not bench.threads else bench.threads} CPU threads, "
          f"torch {torch.__version__}, median of {bench.repeats} x {bench.steps} steps after "
          f"{bench.warmup} warm-up steps\n", flush=True)
    print("\n".join(HEADER), flush=True)
    records = run(bench, lambda measured: print("\n".join(rows(measured)), flush=True))
    if bench.json:
        Path(bench.json).write_text(json.dumps(
            {"config": OmegaConf.to_container(bench), "records": records}, indent=1))
    return records


if __name__ == "__main__":
    main()
