"""Training speed side by side, in one process and on one device:

    python -m gan.bench                                  # the default recipe: DCGAN, MLP
    python -m gan.bench steps=50 repeats=1 devices=[cpu] # a quick look
    python -m gan.bench '+variants.unfused=["optim.fused=null"]'   # what one switch buys
    python -m gan.bench profile=true                     # where (c)'s extra host time goes

(a) tutorial: the tutorial's loop as written: torchvision's MNIST through a DataLoader with
    per-sample PIL transforms (ToTensor, Normalize), D ending in Sigmoid with BCELoss, Adam as
    PyTorch defaults it (single-tensor on the CPU), batch 64. For `model=mlp` the tutorial's own
    MLP, written out below; for other models the same loop around the recipe's nets (Sigmoid on
    D's logit) with its learning rates and betas. Conditional nets (the default recipe's, on
    cluster ids) get uniform labels in G and D: the tutorial has no labels, so this is the
    loop's cost around those nets, not the recipe's math.
(b) bare: a plain PyTorch loop over our resident data (gan.data.images.ShuffledBatches) with
    our nets, loss and optimizers, built by gan.runs.wiring.build_module, and no framework.
(c) lightning: our training step through Trainer.fit, built as `gan.train` builds it, with the
    user's default callbacks (progress bar, TensorBoard logger, throughput, grids, checkpoints),
    except the metrics callback. Grids and checkpoints run at epoch ends, outside the timed window.

Equal math: (b) runs exactly what (c) runs for the recipe measured, written out plainly in
`bare_loop`: the tricks' training-step hooks and their start and per-batch callbacks (EMA's
update, the self-conditioned GAN's clustering and reclustering), the guard's finite check (a D
or G step with a non-finite loss or gradient norm is skipped), D's weights frozen in G's
backward, and the loss's after_d_step. Every run checks it: from one seed, (b)'s and (c)'s
weights (G, D, EMA) after the same batches are compared and the largest difference printed
under the table. What (c) adds is Lightning and our features around the math: the guard's step
scalars and counters, logging at boundaries, the progress bar, throughput, signals, grids and
checkpoints.

Each loop runs `warmup` untimed steps, then `steps` timed ones, each step one batch: a D step
and (every n_critic batches) a G step. The loops run interleaved, (a) (b) (c) per repeat, so
machine noise hits all alike; the table gives the median time over `repeats`, and each speed
ratio as the median of the per-repeat ratios with their [min, max] over repeats. Read the ratios: they
compare loops measured in the same run. `profile=true` runs (b) and (c) once more each under
cProfile and prints, per model, (c)'s own time per step minus (b)'s, by function.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.utils.data import DataLoader

from gan.core.guard import finite, guarded_step
from gan.core.losses import generator_loss
from gan.core.module import grad_norm
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

    def forward(self, z, labels=None):  # the tutorial's G has no labels
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

    def forward(self, x, labels=None):  # the tutorial's D has no labels
        return self.model(x.view(x.size(0), -1))


class SigmoidD(nn.Module):
    """One of our discriminators as the tutorial's loop wants it: a probability, (B, 1)."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x, labels=None):
        return torch.sigmoid(self.discriminator(x, labels)).view(-1, 1)


def tutorial_loader(root: str, batch_size: int) -> DataLoader:
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def tutorial_loop(G, D, loader, latent_dim, lr_g, lr_d, betas, device,
                  classes: int = 0) -> Iterator[None]:
    """The tutorial's loop; `classes` > 0: uniform labels for conditional nets."""
    G, D = G.to(device), D.to(device)
    criterion = nn.BCELoss()
    optimizer_G = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)
    optimizer_D = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas)
    for imgs, _ in loader:
        real_imgs = imgs.to(device)
        valid = torch.ones(imgs.size(0), 1, device=device)
        fake = torch.zeros(imgs.size(0), 1, device=device)

        z = torch.randn(imgs.size(0), latent_dim, device=device)
        y = torch.randint(classes, (imgs.size(0),), device=device) if classes else None
        gen_imgs = G(z, y)

        optimizer_D.zero_grad()
        real_loss = criterion(D(real_imgs, y), valid)
        fake_loss = criterion(D(gen_imgs.detach(), y), fake)
        d_loss = (real_loss + fake_loss) / 2
        d_loss.backward()
        optimizer_D.step()

        optimizer_G.zero_grad()
        g_loss = criterion(D(gen_imgs, y), valid)
        g_loss.backward()
        optimizer_G.step()
        yield


def bare_loop(module, tricks, batches: ShuffledBatches, device,
              datamodule) -> Iterator[None]:
    """(b): the math of GAN.training_step for this recipe, written out without Lightning or
    logging. Per batch: the tricks label the real batch (pseudo-labels) and give G its labels;
    G draws fakes; D's step (the tricks' input transforms, targets and penalties; the guard's
    check that the loss and D's gradient norm are finite, the step skipped if not; the loss's
    after_d_step); every n_critic batches G's step (D's weights frozen in its backward, the same
    check); then every trick's per-batch callback (EMA's update, reclustering), as Lightning
    calls it. The module's own d_step and g_step count, since the tricks read them."""
    module.to(device)
    trainer = bare_trainer(datamodule)
    for trick in tricks:  # e.g. EMA's copy of G, spectral norm on D: what Trainer.fit's setup does
        trick.setup(trainer, module, "fit")
    module.setup("fit")  # then the tricks' state, as Lightning calls the module's setup
    module.to(device)
    G, D, loss = module.generator, module.discriminator, module.loss
    opt_g, opt_d = module.configure_optimizers()
    module.d_step = module.g_step = 0
    for trick in tricks:  # e.g. the self-conditioned GAN's first clustering
        trick.on_train_start(trainer, module)
    for batch_idx, (real, labels) in enumerate(batches):
        for trick in tricks:
            labels = trick.real_labels(real, labels)
        g_labels = labels
        for trick in tricks:
            g_labels = trick.generator_labels(g_labels)
        critic = partial(tricked_critic, D, tricks, labels, module.d_step)
        fake_critic = partial(tricked_critic, D, tricks, g_labels, module.d_step)
        fake = G(torch.randn(real.size(0), G.latent_dim, device=device), g_labels)
        target = 1.0
        for trick in tricks:
            target = trick.real_target(target, module.d_step)
        d_loss = loss.d_loss(critic(real), fake_critic(fake.detach()), target)
        penalty = loss.penalty(critic, real, fake.detach())
        for trick in tricks:
            penalty = penalty + trick.d_penalty(critic, real, fake.detach(), module.d_step)
        opt_d.zero_grad(set_to_none=True)
        (d_loss + penalty).backward()
        guarded_step(opt_d, finite(d_loss + penalty, grad_norm(D)))
        loss.after_d_step(D)
        module.d_step += 1
        if module.d_step % loss.n_critic == 0:
            fake_critic = partial(tricked_critic, D, tricks, g_labels, module.d_step)
            trainable = [p for group in opt_d.param_groups for p in group["params"]
                         if p.requires_grad]
            for p in trainable:
                p.requires_grad_(False)
            scores = fake_critic(fake)
            for trick in tricks:
                scores = trick.g_scores(scores, module.g_step)
            g_loss, g_penalty = generator_loss(loss, scores, partial(critic, real)), 0.0
            for trick in tricks:
                g_penalty = g_penalty + trick.g_penalty(fake, g_labels, module.g_step)
            opt_g.zero_grad(set_to_none=True)
            (g_loss + g_penalty).backward()
            for p in trainable:
                p.requires_grad_(True)
            guarded_step(opt_g, finite(g_loss + g_penalty, grad_norm(G)))
            module.g_step += 1
        batch_end(tricks, trainer, module, (real, labels), batch_idx)
        yield


def batch_end(tricks, trainer, module, batch, batch_idx: int) -> None:
    """Every trick's per-batch callback, as Lightning calls it after a training batch."""
    for trick in tricks:
        trick.on_train_batch_end(trainer, module, None, batch, batch_idx)


def bare_trainer(datamodule) -> SimpleNamespace:
    """What the tricks' callbacks read of a Trainer in the bare loop: the data, and that no
    step logs (the bare loop has no logger; gan.core.stepping.log_boundary reads
    `log_every_n_steps=0` as never)."""
    return SimpleNamespace(datamodule=datamodule, log_every_n_steps=0)


def tricked_critic(D, tricks, labels, d_step: int, images):
    """D as GAN.critic gives it to the loss: the tricks' input transforms first."""
    for trick in tricks:
        images = trick.d_input(images, d_step)
    return D(images, labels)


class Window(L.Callback):
    """Times `steps` whole batches (data, step, every hook) after `warmup` batches: from the end
    of batch warmup-1 to the end of batch warmup+steps-1. Sits last in the callback list. With
    a `profiler` (cProfile) it profiles the same window."""

    def __init__(self, warmup: int, steps: int, sync: Callable[[], None],
                 profiler: cProfile.Profile | None = None):
        self.warmup, self.steps, self.sync, self.profiler = warmup, steps, sync, profiler
        self.start = self.seconds = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.warmup - 1:
            self.sync()
            self.start = time.perf_counter()
            if self.profiler is not None:
                self.profiler.enable()
        elif batch_idx == self.warmup + self.steps - 1:
            self.sync()
            if self.profiler is not None:
                self.profiler.disable()
            self.seconds = time.perf_counter() - self.start


def lightning_seconds(cfg: DictConfig, datamodule, warmup: int, steps: int, sync,
                      profiler: cProfile.Profile | None = None) -> tuple[float, L.LightningModule]:
    """(c): the run `gan.train` wires (the metrics callback off), timed by a Window."""
    HydraConfig.instance().set_config(cfg)
    L.seed_everything(cfg.seed, verbose=False)
    window = Window(warmup, steps, sync, profiler)
    if cfg.get("callbacks") and cfg.callbacks.get("metrics") is not None:
        with open_dict(cfg):
            cfg.callbacks.metrics = None
    _, module = fit(cfg, callbacks=[window], datamodule=datamodule)
    if window.seconds is None:
        raise RuntimeError(f"the Lightning run stopped before {warmup + steps} batches")
    return window.seconds, module


def bare_seconds(cfg: DictConfig, datamodule, device: str, warmup: int, steps: int, sync,
                 profiler: cProfile.Profile | None = None) -> tuple[float, nn.Module]:
    """(b): the bare loop from the seed (c) starts from, over the same batches, timed."""
    torch.manual_seed(cfg.seed)
    module, tricks = build_module(cfg, datamodule)
    batches = ShuffledBatches(datamodule.train_images.to(device),
                              datamodule.train_labels.to(device), cfg.data.batch_size, cfg.seed)
    return timed(bare_loop(module, tricks, batches, device, datamodule), warmup, steps, sync,
                 profiler), module


def tutorial_seconds(cfg: DictConfig, model: str, datamodule, device: str, warmup: int,
                     steps: int, sync) -> float:
    """(a): the tutorial's loop around the tutorial's MLP, or around our nets."""
    torch.manual_seed(cfg.seed)
    classes = 0
    if model == "mlp":
        G, D = TutorialGenerator(cfg.model.latent_dim), TutorialDiscriminator()
    else:
        module, _ = build_module(cfg, datamodule)
        G, D = module.generator, SigmoidD(module.discriminator)
        if getattr(module.generator, "conditional", False):
            classes = module.hparams.num_classes  # the labels the nets embed (cluster ids)
    betas = tuple(cfg.optim.get("betas", (0.9, 0.999)))
    loop = tutorial_loop(G, D, tutorial_loader(cfg.data.root, cfg.data.batch_size),
                         cfg.model.latent_dim, cfg.optim.lr_g, cfg.optim.lr_d, betas, device,
                         classes)
    return timed(loop, warmup, steps, sync)


def weight_gap(bare: nn.Module, lightning: nn.Module) -> float:
    """The largest difference between the two modules' weights and buffers (G, D, EMA of G):
    0.0 when (b) and (c) did the same math."""
    b, c = bare.state_dict(), lightning.state_dict()
    if set(b) != set(c):
        raise RuntimeError(f"(b) and (c) hold different weights: {sorted(set(b) ^ set(c))}")
    return max((b[k].double() - c[k].cpu().double()).abs().max().item() for k in b)


def timed(loop: Iterator[None], warmup: int, steps: int, sync,
          profiler: cProfile.Profile | None = None) -> float:
    for _ in range(warmup):
        next(loop)
    sync()
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for _ in range(steps):
        next(loop)
    sync()
    if profiler is not None:
        profiler.disable()
    return time.perf_counter() - start


def devices(setting) -> list[str]:
    if setting == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return list(setting)


def composed(bench: DictConfig, model: str, device: str, tmp: Path) -> dict[str, DictConfig]:
    """The gan.train config of (c), and of each variant row, for one model on one device."""
    accelerator = {"cpu": "cpu", "cuda": "gpu"}[device]
    base = [*bench.models[model], *bench.overrides, f"trainer.accelerator={accelerator}",
            "trainer.devices=1", "trainer.max_epochs=1", "trainer.enable_model_summary=false",
            f"trainer.limit_train_batches={bench.warmup + bench.steps}"]
    configs = {"c": base, **{f"c {name}": [*base, *extra]
                             for name, extra in (bench.variants or {}).items()}}
    return {key: compose_train(overrides, tmp / model / key.replace(" ", "_"))
            for key, overrides in configs.items()}


def measure_model(bench: DictConfig, model: str, device: str, tmp: Path) -> list[dict]:
    """Records of loops a, b, c (and the variants) for one model on one device. The (c) record
    carries `weight_gap`: how far (c)'s weights ended from (b)'s after the first repeat."""
    cfgs = composed(bench, model, device, tmp)
    cfg = cfgs["c"]
    datamodule = build(cfg.data)
    datamodule.setup("fit")
    if len(datamodule.train_dataloader()) < bench.warmup + bench.steps:
        raise ValueError(f"warmup + steps = {bench.warmup + bench.steps} batches, but the data "
                         f"has {len(datamodule.train_dataloader())}: lower steps= or warmup=")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    window = (bench.warmup, bench.steps, sync)
    seconds: dict[str, list[float]] = {key: [] for key in ["a", "b", *cfgs]}
    gap = None
    for _ in range(bench.repeats):
        seconds["a"].append(tutorial_seconds(cfg, model, datamodule, device, *window))
        b_seconds, bare = bare_seconds(cfg, datamodule, device, *window)
        seconds["b"].append(b_seconds)
        for key, c in cfgs.items():
            c_seconds, lightning = lightning_seconds(c, datamodule, *window)
            seconds[key].append(c_seconds)
            if key == "c" and gap is None:
                gap = weight_gap(bare, lightning)
    records = [record(device, model, key, cfg.data.batch_size, bench.steps, values)
               for key, values in seconds.items()]
    by = {r["loop"]: r for r in records}
    for r in records:  # speed relative to (a) and (b), paired within each repeat
        for ref in ("a", "b"):
            r[f"vs_{ref}"], r[f"vs_{ref}_range"] = paired_ratio(by[ref]["seconds"], r["seconds"])
    by["c"]["weight_gap"] = gap
    if bench.profile:
        by["c"]["profile"] = host_profile(cfg, datamodule, device, bench, sync)
    return records


def paired_ratio(reference: list[float], seconds: list[float]) -> tuple[float, list[float]]:
    """The speed of a loop against a reference: per repeat, the reference's time over this
    loop's (the two ran back to back in that repeat, so the machine's drift hits both), then
    the median over repeats and the [min, max] spread. A spread that straddles 1.0 means the
    noise is larger than the difference."""
    ratios = [ref / own for ref, own in zip(reference, seconds)]
    return statistics.median(ratios), [min(ratios), max(ratios)]


def record(device: str, model: str, loop: str, batch: int, steps: int,
           values: list[float]) -> dict:
    step_s = statistics.median(values) / steps
    return {"device": device, "model": model, "loop": loop, "batch": batch, "steps": steps,
            "seconds": values, "step_s": step_s, "img_per_s": batch / step_s}


# ---- profile=true: where (c)'s extra host time goes ------------------------------------------

def host_profile(cfg: DictConfig, datamodule, device: str, bench: DictConfig,
                 sync) -> list[dict]:
    """One more (b) and (c) pass each under cProfile, over the timed window only (not counted
    in the table): per function, its own time per step in (c) minus in (b), largest first.
    `extra` marks functions (c) calls more often than (b): its host work. Functions called
    alike in both (the math: the same ops, the same calls) differ only by machine noise."""
    profiles = {"b": cProfile.Profile(), "c": cProfile.Profile()}
    bare_seconds(cfg, datamodule, device, bench.warmup, bench.steps, sync, profiles["b"])
    lightning_seconds(cfg, datamodule, bench.warmup, bench.steps, sync, profiles["c"])
    own = {key: own_time(pstats.Stats(p)) for key, p in profiles.items()}
    rows = []
    for fn in own["b"].keys() | own["c"].keys():
        (tb, nb), (tc, nc) = own["b"].get(fn, (0.0, 0)), own["c"].get(fn, (0.0, 0))
        rows.append({"function": fn, "us_per_step": (tc - tb) / bench.steps * 1e6,
                     "calls_per_step": (nc - nb) / bench.steps, "extra": nc != nb})
    return sorted(rows, key=lambda r: (not r["extra"], -r["us_per_step"]))


def own_time(stats: pstats.Stats) -> dict[str, tuple[float, int]]:
    """{function: (own seconds, calls)}, functions named file:line(name) from the package on."""
    out = {}
    for (file, line, name), (_, calls, own_s, _, _) in stats.stats.items():
        parts = Path(file).parts
        where = next((i for i, p in enumerate(parts) if p in ("site-packages", "gan")), None)
        short = "/".join(parts[where + (parts[where] == "site-packages"):]) if where is not None \
            else file
        out[f"{short}:{line}({name})"] = (own_s, calls)
    return out


def profile_lines(records: list[dict], top: int) -> list[str]:
    """The profile of each model's (c), as a Markdown table per model."""
    lines = []
    for r in records:
        if "profile" not in r:
            continue
        extra = [p for p in r["profile"] if p["extra"]]
        alike = sum(p["us_per_step"] for p in r["profile"] if not p["extra"])
        lines += ["", f"{r['device']} {r['model']}: host time per step of (c) minus (b), own time "
                  f"by function under cProfile (which inflates Python calls): "
                  f"{sum(p['us_per_step'] for p in extra):,.0f} us in functions (c) calls more "
                  f"often; {alike:,.0f} us in those both call alike (the math: noise)", "",
                  "| function | us/step | extra calls/step |", "| --- | ---: | ---: |"]
        lines += [f"| `{p['function']}` | {p['us_per_step']:,.1f} | {p['calls_per_step']:.1f} |"
                  for p in extra[:top]]
        # (b)'s own loop stands against (c)'s training_step: its time counts negative
        fewer = sorted((p for p in extra if p["us_per_step"] < 0), key=lambda p: p["us_per_step"])
        lines += ["", "Called more often in (b), counted against: " + ", ".join(
            f"`{p['function']}` {p['us_per_step']:,.1f} us" for p in fewer[:3])]
    return lines


def notes(records: list[dict]) -> list[str]:
    """Under the table: that (b) and (c) did the same math, per model."""
    return [f"{r['device']} {r['model']}: (b) and (c) weights after {r['steps']} + warm-up steps "
            f"from one seed differ by at most {r['weight_gap']:.1e}"
            for r in records if r.get("weight_gap") is not None]


HEADER = ["| device | model | loop | batch | img/s | ms/step | speed vs (a) | speed vs (b) |",
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]


def rows(records: list[dict]) -> list[str]:
    lines = []
    for r in records:
        name = NAMES.get(r["loop"], f"(c) + {r['loop'][2:]}")
        lines.append(f"| {r['device']} | {r['model']} | {name} | {r['batch']} | "
                     f"{r['img_per_s']:,.0f} | "
                     f"{r['step_s'] * 1e3:.1f} | {ratio(r, 'a')} | {ratio(r, 'b')} |")
    return lines


def ratio(r: dict, ref: str) -> str:
    """`0.89x [0.85, 0.93]`: the median paired ratio and its spread over repeats."""
    low, high = r[f"vs_{ref}_range"]
    spread = f" [{low:.2f}, {high:.2f}]" if len(r["seconds"]) > 1 else ""
    return f"{r[f'vs_{ref}']:.2f}x{spread}"


def table(records: list[dict]) -> str:
    return "\n".join(HEADER + rows(records))


def run(bench: DictConfig, report: Callable[[list[dict]], None] = lambda records: None,
        say: Callable[[str], None] = print) -> list[dict]:
    """Every model on every device; `report` gets each model's records as soon as measured,
    `say` the notes (same math) and profiles under the table."""
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
    for line in notes(records) + profile_lines(records, bench.profile_top):
        say(line)
    return records
