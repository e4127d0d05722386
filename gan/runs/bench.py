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

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.utils.data import DataLoader

from gan.data.images import ShuffledBatches
from gan.io.config import build, compose_train
from gan.runs.wiring import build_module, fit

LOOPS = ("a", "b", "c")


NAMES = {"a": "(a) tutorial", "b": "(b) bare PyTorch", "c": "(c) Lightning"}


class TutorialGenerator(nn.Module):
    def __init__(self, latent_dim=100):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 1024), nn.ReLU(),
            nn.Linear(1024, 784), nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z).view(-1, 1, 28, 28)


class TutorialDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(784, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.model(x.view(x.size(0), -1))


class SigmoidD(nn.Module):
    """One of our discriminators as the tutorial's loop wants it: a probability, (B, 1)."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x):
        return torch.sigmoid(self.discriminator(x, None)).view(-1, 1)


def tutorial_loader(root: str, batch_size: int) -> DataLoader:
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def tutorial_loop(G, D, loader, latent_dim, lr_g, lr_d, betas, device) -> Iterator[None]:
    G, D = G.to(device), D.to(device)
    criterion = nn.BCELoss()
    optimizer_G = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)
    optimizer_D = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas)
    for imgs, _ in loader:
        real_imgs = imgs.to(device)
        valid = torch.ones(imgs.size(0), 1, device=device)
        fake = torch.zeros(imgs.size(0), 1, device=device)

        z = torch.randn(imgs.size(0), latent_dim, device=device)
        gen_imgs = G(z)

        optimizer_D.zero_grad()
        real_loss = criterion(D(real_imgs), valid)
        fake_loss = criterion(D(gen_imgs.detach()), fake)
        d_loss = (real_loss + fake_loss) / 2
        d_loss.backward()
        optimizer_D.step()

        optimizer_G.zero_grad()
        g_loss = criterion(D(gen_imgs), valid)
        g_loss.backward()
        optimizer_G.step()
        yield


def bare_loop(module, batches: ShuffledBatches, device) -> Iterator[None]:
    """The math of GAN.training_step without tricks, Lightning or logging: D's weights do not
    take gradients in G's step, as under Lightning's toggled_optimizer."""
    G, D, loss = module.generator.to(device), module.discriminator.to(device), module.loss
    opt_g, opt_d = module.configure_optimizers()
    d_step = 0
    for real, labels in batches:
        fake = G(torch.randn(real.size(0), G.latent_dim, device=device), labels)
        critic = partial(D, labels=labels)
        G.requires_grad_(False)
        d_loss = loss.d_loss(critic(real), critic(fake.detach()))
        d_loss = d_loss + loss.penalty(critic, real, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        loss.after_d_step(D)
        G.requires_grad_(True)
        d_step += 1
        if d_step % loss.n_critic == 0:
            D.requires_grad_(False)
            g_loss = loss.g_loss(critic(fake))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            D.requires_grad_(True)
        yield


class Window(L.Callback):
    """Times `steps` whole batches (data, step, every hook) after `warmup` batches: from the end
    of batch warmup-1 to the end of batch warmup+steps-1. Sits last in the callback list."""

    def __init__(self, warmup: int, steps: int, sync: Callable[[], None]):
        self.warmup, self.steps, self.sync = warmup, steps, sync
        self.start = self.seconds = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.warmup - 1:
            self.sync()
            self.start = time.perf_counter()
        elif batch_idx == self.warmup + self.steps - 1:
            self.sync()
            self.seconds = time.perf_counter() - self.start


def lightning_seconds(cfg: DictConfig, datamodule, warmup: int, steps: int, sync) -> float:
    """(c): the run `gan.train` wires (the metrics callback off), timed by a Window."""
    window = Window(warmup, steps, sync)
    if cfg.get("callbacks") and cfg.callbacks.get("metrics") is not None:
        with open_dict(cfg):
            cfg.callbacks.metrics = None
    fit(cfg, callbacks=[window], datamodule=datamodule)
    if window.seconds is None:
        raise RuntimeError(f"the Lightning run stopped before {warmup + steps} batches")
    return window.seconds


def timed(loop: Iterator[None], warmup: int, steps: int, sync) -> float:
    for _ in range(warmup):
        next(loop)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        next(loop)
    sync()
    return time.perf_counter() - start


def devices(setting) -> list[str]:
    if setting == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return list(setting)


def measure_model(bench: DictConfig, model: str, device: str, tmp: Path) -> list[dict]:
    """Records of loops a, b, c (and the variants) for one model on one device."""
    accelerator = {"cpu": "cpu", "cuda": "gpu"}[device]
    base = [*bench.models[model], *bench.overrides, f"trainer.accelerator={accelerator}",
            "trainer.devices=1", "trainer.max_epochs=1", "trainer.enable_model_summary=false",
            f"trainer.limit_train_batches={bench.warmup + bench.steps}"]
    configs = {"c": base, **{f"c {name}": [*base, *extra]
                             for name, extra in (bench.variants or {}).items()}}
    cfgs = {key: compose_train(overrides, tmp / model / key.replace(" ", "_"))
            for key, overrides in configs.items()}
    cfg = cfgs["c"]
    datamodule = build(cfg.data)
    datamodule.setup("fit")
    if len(datamodule.train_dataloader()) < bench.warmup + bench.steps:
        raise ValueError(f"warmup + steps = {bench.warmup + bench.steps} batches, but the data "
                         f"has {len(datamodule.train_dataloader())}: lower steps= or warmup=")
    batch = cfg.data.batch_size
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    loader = tutorial_loader(cfg.data.root, batch)
    seconds: dict[str, list[float]] = {key: [] for key in ["a", "b", *cfgs]}
    for _ in range(bench.repeats):
        torch.manual_seed(cfg.seed)
        if model == "mlp":
            G, D = TutorialGenerator(cfg.model.latent_dim), TutorialDiscriminator()
        else:
            module, _ = build_module(cfg, datamodule)
            G, D = module.generator, SigmoidD(module.discriminator)
        betas = tuple(cfg.optim.get("betas", (0.9, 0.999)))
        loop = tutorial_loop(G, D, loader, cfg.model.latent_dim, cfg.optim.lr_g, cfg.optim.lr_d,
                             betas, device)
        seconds["a"].append(timed(loop, bench.warmup, bench.steps, sync))

        torch.manual_seed(cfg.seed)
        module, _ = build_module(cfg, datamodule)
        batches = ShuffledBatches(datamodule.train_images.to(device),
                                  datamodule.train_labels.to(device), batch, cfg.seed)
        seconds["b"].append(timed(bare_loop(module, batches, device), bench.warmup,
                                  bench.steps, sync))
        for key, c in cfgs.items():
            HydraConfig.instance().set_config(c)
            L.seed_everything(c.seed, verbose=False)
            seconds[key].append(lightning_seconds(c, datamodule, bench.warmup, bench.steps,
                                                  sync))
    records = []
    for key, values in seconds.items():
        step_s = statistics.median(values) / bench.steps
        records.append({"device": device, "model": model, "loop": key, "batch": batch,
                        "steps": bench.steps, "seconds": values, "step_s": step_s,
                        "img_per_s": batch / step_s})
    by = {r["loop"]: r for r in records}
    for r in records:  # speed relative to (a) and (b): their step time over this one's
        r["vs_a"] = by["a"]["step_s"] / r["step_s"]
        r["vs_b"] = by["b"]["step_s"] / r["step_s"]
    return records


HEADER = ["| device | model | loop | batch | img/s | ms/step | speed vs (a) | speed vs (b) |",
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]


def rows(records: list[dict]) -> list[str]:
    lines = []
    for r in records:
        name = NAMES.get(r["loop"], f"(c) + {r['loop'][2:]}")
        lines.append(f"| {r['device']} | {r['model']} | {name} | {r['batch']} | "
                     f"{r['img_per_s']:,.0f} | "
                     f"{r['step_s'] * 1e3:.1f} | {r['vs_a']:.2f}x | {r['vs_b']:.2f}x |")
    return lines


def table(records: list[dict]) -> str:
    return "\n".join(HEADER + rows(records))


def run(bench: DictConfig, report: Callable[[list[dict]], None] = lambda records: None,
        ) -> list[dict]:
    """Every model on every device; `report` gets each model's records as soon as measured."""
    for key in ("steps", "warmup", "repeats"):
        if bench[key] < 1:
            raise ValueError(f"{key} must be >= 1, got {bench[key]}")
    if bench.threads:
        torch.set_num_threads(bench.threads)
    records = []
    with tempfile.TemporaryDirectory(prefix="gan-bench-") as tmp:
        for device in devices(bench.devices):
            for model in bench.models:
                measured = measure_model(bench, model, device, Path(tmp) / device)
                report(measured)
                records += measured
    return records
