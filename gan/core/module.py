"""The GAN LightningModule: generator, discriminator, and one alternating training step.

Manual optimisation, as Lightning documents it for GANs. The step knows the loss and tricks only
through their contracts (gan/core/losses.py, gan/tricks/), so adding either never changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import lightning as L
import torch
from torch import nn

from gan.core.drawing import cycled_labels, draw, is_conditional
from gan.core.guard import StepGuard, finite, guarded_step, host_number
from gan.core.losses import GANLoss, generator_loss
from gan.core.rng import all_rng_states, restore_rank_stream
from gan.core.stepping import direct_steps, frozen, log_boundary, step_directly
from gan.core.trick import Trick
from gan.io.checkpoint import check_fits, upgrade_state_dict
from gan.io.image_model import CKPT_KEY, stamp
from gan.io.spec import ImageSpec, LabelSpace


def grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


class GAN(L.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        optimizer_g: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer],
        tricks: Sequence[Trick] = (),
        img_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        n_fixed: int = 64,
        seed: int = 0,
        max_consecutive_skips: int = 20,
        config: dict | None = None,
        sampler=None,
    ):
        super().__init__()
        self.automatic_optimization = False
        # The nets, loss and tricks are objects: the resolved config (hparams) describes them and
        # `gan.generate` rebuilds the generator from it.
        # logger=False: gan.sweeps.hparams.HParams logs the swept keys with the final metrics
        # instead (a second, metric-less hparams record at the start would shadow it in
        # TensorBoard).
        self.save_hyperparameters(ignore=["generator", "discriminator", "loss", "optimizer_g",
                                          "optimizer_d", "tricks", "sampler"], logger=False)
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.tricks = list(tricks)
        # How the trained G is sampled (`sampler=`: plain, truncation, DRS): part of `draw`, so
        # metrics, grids and generation all see the images the model is meant to give.
        self.posthoc = sampler
        loss.check(discriminator)  # refuse e.g. a BatchNorm critic under a gradient penalty
        self.latent_dim = generator.latent_dim
        # Own counters: trainer.global_step counts every optimizer.step(), G's and D's alike.
        self.d_step = 0
        self.g_step = 0
        # Non-finite steps are skipped and counted; too many in a row stop the run.
        self.guard = StepGuard(max_consecutive_skips)
        self.started = False
        self._direct = False  # Lightning's backward and step wrappers until on_train_start
        # The tricks' own modules and buffers, under their names (gan/core/trick.py)
        self.trick_state = nn.ModuleDict()
        # Fixed noise and labels for grids: buffers move with the device and live in checkpoints.
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("fixed_z", torch.randn(n_fixed, self.latent_dim, generator=g))
        self.register_buffer("fixed_labels", cycled_labels(n_fixed, num_classes))

    # ---- the math -------------------------------------------------------------------------

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    def critic_in_training(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D as the loss sees it: every image passes the tricks' input transforms first."""
        for trick in self.tricks:
            images = trick.d_input(images, self.d_step)
        return self.discriminator(images, labels)

    def training_step(self, batch, batch_idx):
        real, labels = batch
        opt_g, opt_d = self.optimizers()
        for trick in self.tricks:  # a trick may label the real images itself (pseudo-labels)
            labels = trick.real_labels(real, labels)
        critic = partial(self.critic_in_training, labels=labels)
        # Fakes share the real batch's labels: class-balanced, and what a conditional D needs
        # (a trick may give G other labels, e.g. InfoGAN's random codes). D judges each fake
        # with the label G drew it for.
        g_labels = labels
        for trick in self.tricks:
            g_labels = trick.generator_labels(g_labels)
        fake = self.generator(self.noise(real.size(0)), g_labels)
        fake_critic = partial(self.critic_in_training, labels=g_labels)

        # D's step needs no freezing: its losses see G only through fake.detach().
        d_real, d_fake = critic(real), fake_critic(fake.detach())
        target = 1.0
        for trick in self.tricks:
            target = trick.real_target(target, self.d_step)
        d_loss = self.loss.d_loss(d_real, d_fake, target)
        penalty = self.loss.penalty(critic, real, fake.detach())
        for trick in self.tricks:
            penalty = penalty + trick.d_penalty(critic, real, fake.detach(), self.d_step)
        opt_d.zero_grad(set_to_none=True)
        self._backward(d_loss + penalty)
        d_grad = grad_norm(self.discriminator)
        ok = finite(d_loss + penalty, d_grad)  # on the device: read at the boundaries only
        self._step(opt_d, ok)
        self.loss.after_d_step(self.discriminator)
        self.d_step += 1
        self.guard.record("d", ok, {"d_loss": d_loss, "d_penalty": penalty,  # D's outputs:
                                    "d_real": d_real, "d_fake": d_fake,  # means at boundaries
                                    "d_grad_norm": d_grad})

        if self.d_step % self.loss.n_critic == 0:
            # D's weights take no gradient from G's loss (the only freezing the math needs)
            with frozen([p for group in opt_d.param_groups for p in group["params"]]):
                scores = fake_critic(fake)
                for trick in self.tricks:
                    scores = trick.g_scores(scores, self.g_step)
                g_loss = generator_loss(self.loss, scores, partial(critic, real))
                g_penalty = 0.0
                for trick in self.tricks:
                    g_penalty = g_penalty + trick.g_penalty(fake, g_labels, self.g_step)
                opt_g.zero_grad(set_to_none=True)
                self._backward(g_loss + g_penalty)
            g_grad = grad_norm(self.generator)
            ok = finite(g_loss + g_penalty, g_grad)
            self._step(opt_g, ok)
            self.g_step += 1
            self.guard.record("g", ok, {"g_loss": g_loss, "g_penalty": g_penalty,
                                        "g_grad_norm": g_grad})
        if log_boundary(self.trainer):  # when Lightning writes logs: the same steps
            self._log_window()

    def _backward(self, loss: torch.Tensor) -> None:
        """`loss.backward()` where Lightning's wrapper would only dispatch hooks nobody
        overrides (gan/core/stepping.py), else `manual_backward`."""
        if self._direct:
            loss.backward()
        else:
            self.manual_backward(loss)

    def _step(self, optimizer, ok: torch.Tensor) -> None:
        """The guarded step, on the raw optimizer where Lightning's wrapper adds only hooks."""
        if self._direct:
            step_directly(optimizer, partial(guarded_step, ok=ok))
        else:
            guarded_step(optimizer, ok)

    def _log_window(self) -> None:
        """The step scalars' means since the last boundary, as host tensors: Lightning turns
        progress-bar values into Python numbers every batch, which on a device tensor would be
        a sync per step. `read` raises `Diverged` after too many skips in a row."""
        values = self.guard.read()
        if not values:
            return
        host = {f"train/{k}": v for k, v in values.items()}
        host["train/d_step"] = host_number(self.d_step)
        host["train/g_step"] = host_number(self.g_step)
        for name in ("train/d_loss", "train/g_loss"):
            if name in host:
                self.log(name, host.pop(name), prog_bar=True)
        self.log_dict(host)

    def on_train_epoch_end(self):
        # Before ModelCheckpoint writes (Lightning calls checkpoint callbacks after the module).
        self.guard.check()

    def configure_optimizers(self):
        # Each optimizer also trains the tricks' own weights on its side (InfoGAN's Q head on
        # D's trunk is D's): G's step freezes all of opt_d's, so those take no gradient there.
        g_params = [*self.generator.parameters(),
                    *(p for trick in self.tricks for p in trick.g_parameters())]
        d_params = [*self.discriminator.parameters(),
                    *(p for trick in self.tricks for p in trick.d_parameters())]
        return self.optimizer_g(g_params), self.optimizer_d(d_params)

    # ---- the ImageModel contract (gan/io/image_model.py) ----------------------------------

    def label_space(self) -> LabelSpace:
        """A trick's own labels (self-conditioning's clusters and their prior), else the data's
        classes for a conditional G, else none."""
        for trick in self.tricks:
            space = trick.label_space(self)
            if space is not None:
                return space
        if is_conditional(self.generator):
            return LabelSpace("classes", int(self.hparams.num_classes))
        return LabelSpace()

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec.of(self.hparams.img_shape, self.label_space())

    @torch.no_grad()
    def draw(self, n: int, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        if labels is None:
            labels = self.spec.labels.sample(n, seed)
        labels = labels.to(self.device)
        if self.posthoc is None:
            return draw(self.sample, n, self.latent_dim, labels, seed)
        return self.posthoc.draw(self.sample, n, self.latent_dim, labels, seed,
                                 critic=self.critic)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images for latent codes `z` (walks, projection starts), on the CPU."""
        if labels is None:
            labels = self.spec.labels.cycled(len(z))
        return self.sample(z.to(self.device), labels.to(self.device)).cpu()

    @torch.no_grad()
    def critic(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D's logits in eval mode (running BatchNorm statistics), for samplers that read D."""
        d = self.discriminator
        was_training = d.training
        d.eval()
        try:
            return d(images.to(self.device, self.dtype), labels.to(self.device)).float()
        finally:
            d.train(was_training)

    def export_module(self) -> nn.Module:
        return self.sampling_generator()

    def describe(self) -> dict:
        swaps = [type(t).__name__.lower() for t in self.tricks
                 if t.sampling_generator(self.generator) is not self.generator]
        return {"family": "gan", "draws_with": "+".join(swaps) or "generator",
                "sampler": self.posthoc.describe() if self.posthoc is not None
                else {"name": "plain"}, "step": int(self.g_step)}

    # ---- sampling ---------------------------------------------------------------------------

    def sampling_generator(self) -> nn.Module:
        """The generator for grids, generation and metrics (a trick may swap it, e.g. EMA)."""
        generator = self.generator
        for trick in self.tricks:
            generator = trick.sampling_generator(generator)
        return generator

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] for noise `z`, in eval mode (BatchNorm uses running statistics),
        as float32 whatever the weights' dtype (bf16 under trainer.precision=bf16-true)."""
        generator = self.sampling_generator()
        was_training = generator.training
        generator.eval()
        try:
            return generator(z.to(self.dtype), labels).clamp(-1, 1).float()
        finally:
            generator.train(was_training)

    # ---- DDP and checkpoints -----------------------------------------------------------------

    def setup(self, stage: str) -> None:
        # After every callback's setup (Lightning's order): the tricks' state is built from
        # the nets as init_from and re-parametrising tricks left them; kept on a second fit.
        for trick in self.tricks:
            name = trick.state_name
            if name is None:
                continue
            if name not in self.trick_state:
                state = trick.build_state(self)
                if state is None:
                    continue
                self.trick_state[name] = state
            trick.bind_state(self.trick_state[name])

    def on_fit_start(self):
        if self.trainer.world_size > 1:
            # seed_everything seeds every rank alike: offset the noise so ranks draw different z.
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["gan_counters"] = {"d_step": self.d_step, "g_step": self.g_step}
        checkpoint["gan_guard"] = {"skipped_steps": self.guard.total_skipped()}
        checkpoint["rng_states"] = all_rng_states(self.trainer)
        checkpoint[CKPT_KEY] = stamp(self, "gan")

    def _ckpt_name(self) -> str:
        """The checkpoint's path as the Trainer was given it; "checkpoint" without a Trainer
        (`GAN.load_from_checkpoint`): `self.trainer` raises RuntimeError when none is attached."""
        try:
            trainer = self.trainer
        except RuntimeError:
            return "checkpoint"
        return trainer.ckpt_path

    def on_load_checkpoint(self, checkpoint):
        # Before Lightning loads the weights: a checkpoint of another model is refused with the
        # config keys that differ, not a list of state_dict keys.
        upgrade_state_dict(checkpoint["state_dict"])  # state from before the trick contract
        check_fits(checkpoint, self.state_dict(), self.hparams.config or {}, self._ckpt_name())
        counters = checkpoint.get("gan_counters", {})
        self.d_step = counters.get("d_step", 0)
        self.g_step = counters.get("g_step", 0)
        self.guard.skipped_steps = checkpoint.get("gan_guard", {}).get("skipped_steps", 0)
        self._rng_to_restore = checkpoint.get("rng_states")

    def on_train_start(self):
        self.started = True  # errors from here on are training failures, not bad input
        self._direct = direct_steps(self.trainer, self)
        # Last thing before the first resumed step (after every callback's on_train_start and
        # the DDP seed offset), so the next z, augmentation and noise are the ones the
        # uninterrupted run drew.
        states = getattr(self, "_rng_to_restore", None)
        if states:
            restore_rank_stream(states, self.global_rank)
            self._rng_to_restore = None
