"""The `_target_` of conf/trainer/: Lightning's Trainer plus the one GPU switch it leaves to
torch. `benchmark` (cudnn.benchmark: the fastest convolution algorithms for the shapes seen,
worth it when shapes are static, as ours are) is the Trainer's own; `float32_matmul_precision`
sets `torch.set_float32_matmul_precision` for the process: `high` lets float32 matmuls use
TF32 on Ampere and newer GPUs (10 bits of mantissa in the products, accumulated in float32);
`highest` (the default, PyTorch's) keeps them in full float32. cuDNN convolutions use TF32 by
PyTorch's default already (torch.backends.cudnn.allow_tf32), which is left as it is. Both
switches are off by default and on in `experiment=gpu`."""

from __future__ import annotations

import lightning as L
import torch

MATMUL_PRECISIONS = ("highest", "high", "medium")


def trainer(float32_matmul_precision: str = "highest", **kwargs) -> L.Trainer:
    if float32_matmul_precision not in MATMUL_PRECISIONS:
        raise ValueError(f"trainer.float32_matmul_precision must be one of "
                         f"{', '.join(MATMUL_PRECISIONS)}, got {float32_matmul_precision!r}")
    torch.set_float32_matmul_precision(float32_matmul_precision)
    return L.Trainer(**kwargs)
