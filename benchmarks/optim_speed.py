"""Optimizer step time of G and D: single-tensor vs foreach vs fused Adam, and RMSprop.

    python benchmarks/optim_speed.py            # torch's default thread count

Gradients are random and fixed; only `optimizer.step()` is timed (G's and D's together), for the
MLP (seed) and DCGAN-32 (default) nets on 28x28. conf/optim/adam.yaml quotes its figures.
"""

from __future__ import annotations

import statistics
import time

import torch

from gan.networks import dcgan, mlp

MODES = {
    "Adam single-tensor": (torch.optim.Adam, {"foreach": False}),
    "Adam foreach": (torch.optim.Adam, {"foreach": True}),
    "Adam fused": (torch.optim.Adam, {"fused": True}),
    "RMSprop single-tensor": (torch.optim.RMSprop, {"foreach": False}),
    "RMSprop foreach": (torch.optim.RMSprop, {"foreach": True}),
}


def nets(model: str):
    if model == "mlp":
        return mlp.Generator((1, 28, 28)), mlp.Discriminator((1, 28, 28))
    return dcgan.Generator((1, 28, 28), width=32), dcgan.Discriminator((1, 28, 28), width=32)


def step_ms(model: str, cls, kwargs, rounds: int = 7, steps: int = 20) -> float:
    G, D = nets(model)
    optimizers = [cls(net.parameters(), lr=2e-4, **kwargs) for net in (G, D)]
    for net in (G, D):
        for p in net.parameters():
            p.grad = torch.randn_like(p)
    for _ in range(5):
        for opt in optimizers:
            opt.step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            for opt in optimizers:
                opt.step()
        times.append((time.perf_counter() - start) / steps * 1e3)
    return statistics.median(times)


def main() -> None:
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}: ms per G+D optimizer "
          f"step, median of 7 rounds of 20")
    for model in ("mlp", "dcgan"):
        for name, (cls, kwargs) in MODES.items():
            print(f"{model:6s} {name:22s} {step_ms(model, cls, kwargs):6.2f} ms")


if __name__ == "__main__":
    main()
