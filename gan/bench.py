"""Training speed side by side, in one process and on one device:

    python -m gan.bench                                  # MLP (seed) and DCGAN (unconditional recipe)
    python -m gan.bench steps=50 repeats=1 devices=[cpu] # a quick look
    python -m gan.bench '+variants.unfused=["optim.fused=null"]'   # what one switch buys

(a) tutorial: the tutorial's loop as written: torchvision's MNIST through a DataLoader with
    per-sample PIL transforms (ToTensor, Normalize), D ending in Sigmoid with BCELoss, Adam as
    PyTorch defaults it (single-tensor on the CPU), batch 64. For `model=mlp` the tutorial's own
    MLP, written out below; for other models the same loop around our nets (Sigmoid on D's
    logit) with the recipe's learning rates and betas.
(b) bare: a plain PyTorch loop over our resident data (gan.data.images.ShuffledBatches) with our
    nets, loss and optimizers, built by gan.runs.wiring.build_module: the same math as (c), no framework.
(c) lightning: our training step through Trainer.fit, built as `gan.train` builds it, with the
    user's default callbacks (progress bar, TensorBoard logger, throughput, grids, checkpoints),
    except the metrics callback. Grids and checkpoints run at epoch ends, outside the timed window.

Each loop runs `warmup` untimed steps, then `steps` timed ones, each step one batch: a D step
and (every n_critic batches) a G step. The loops run interleaved, (a) (b) (c) per repeat, so
machine noise hits all alike; the table gives the median over `repeats`. Read the ratios: they
compare loops measured in the same run.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from gan.benchmark.loops import HEADER, rows, run
from gan.cli.runner import entry_point
from gan.io.files import check_output, write_json
from gan.io.keys import device, integer
from gan.io.usage import UsageError


def check(bench: DictConfig) -> None:
    """Every key, the devices and the json output, refused in one line before measuring."""
    integer(bench.steps, "steps", low=1)
    integer(bench.warmup, "warmup", low=0)
    integer(bench.repeats, "repeats", low=1)
    integer(bench.threads, "threads", low=1, optional=True)
    if bench.devices != "auto":
        if isinstance(bench.devices, str) or not all(isinstance(d, str) for d in bench.devices):
            raise UsageError(f"devices={bench.devices}: use auto or a list such as [cpu,cuda]")
        for name in bench.devices:
            if device(name, "devices") not in ("cpu", "cuda"):
                raise UsageError(f"devices={bench.devices}: use cpu and/or cuda")
    if bench.json:
        check_output(bench.json, "json", (".json",))


def measure(bench: DictConfig) -> list[dict]:
    check(bench)
    print(f"{torch.get_num_threads() if not bench.threads else bench.threads} CPU threads, "
          f"torch {torch.__version__}, median of {bench.repeats} x {bench.steps} steps after "
          f"{bench.warmup} warm-up steps\n", flush=True)
    print("\n".join(HEADER), flush=True)
    records = run(bench, lambda measured: print("\n".join(rows(measured)), flush=True))
    if bench.json:
        write_json(bench.json, {"config": OmegaConf.to_container(bench), "records": records})
    return records


main = entry_point("bench", measure, "bench", hydra_app=False)


if __name__ == "__main__":
    main()
