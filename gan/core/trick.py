"""The Trick contract: one small class per trick, in gan/tricks/.

A trick is a Lightning `Callback` (so it also gets every Lightning hook, its own `state_dict` in
checkpoints, and `setup` before the optimizers and the DDP wrap) plus the hooks the training step
folds over. Each hook is the identity (or nothing) here; a trick overrides the ones it needs:

- `d_input(images, step)`: every image D sees, real or fake, in D and G steps alike.
- `real_target(target, step)`: the target for real images in losses that use targets.
- `d_penalty(critic, real, fake, step)`: a term added to D's loss.
- `real_labels(real, labels)`: the labels D is given with the real batch (the data's by default;
  a trick may give its own pseudo-labels, e.g. the self-conditioned GAN's clusters).
- `generator_labels(labels)`: the labels G is given in training (the real batch's by default);
  D judges each fake with the label G was given.
- `g_scores(scores, step)`: D's scores of the fakes that G's loss reads (all by default; top-k
  keeps the ones D rates most real).
- `g_penalty(fake, labels, step)`: a term added to G's loss (`labels`: what G was given).
- `g_parameters()`: weights of the trick's own that G's optimizer trains with G.
- `d_parameters()`: weights of the trick's own that D's optimizer trains with D (and that are
  frozen with D's in G's step, e.g. InfoGAN's Q head on D's trunk).
- `sampling_generator(generator)`: the generator grids, generation and metrics use.
- `label_space(pl_module)`: the labels the model is conditioned on when the trick owns them
  (self-conditioning's clusters and their prior); None: the data's.
- `d_img_shape(img_shape)`: the shape of one input D is built for, given the data's (PacGAN's
  D reads m images stacked along channels); `scores_single_images = False` says D's score
  belongs to such a pack, not to one image (post-hoc samplers that read D refuse it).

A trick's own modules and buffers (EMA's averaged G, the clusters, InfoGAN's Q head) are its
state, never attributes set on the GAN: `build_state(pl_module)` makes them once the nets are
set up, the GAN keeps them under `trick_state.<state_name>` (so checkpoints hold them there and
Lightning moves them with the module), and `bind_state(state)` hands them back, also after a
resume or a second fit.

`step` counts D updates in the D hooks and G updates in `g_scores` and `g_penalty`. Adding a
trick is one class in gan/tricks/ (a module named after its math) plus one YAML in conf/tricks/.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from gan.io.spec import LabelSpace


class Trick(L.Callback):
    double_backward = False  # True where `d_penalty` differentiates D's input gradient (compile)
    # A trick whose labels are its own (pseudo-labels): how many there are. G and D embed this
    # many labels in place of the data's classes (gan.runs.wiring.build_module); None: the data's.
    label_count: int | None = None
    state_name: str | None = None  # trick_state.<state_name> in checkpoints; None: no state
    state: nn.Module | None = None

    def build_state(self, pl_module) -> nn.Module | None:
        """The trick's own modules and buffers, built from the set-up nets (the GAN's `setup`,
        after every callback's: init_from's weights and re-parametrisations are in place)."""
        return None

    def bind_state(self, state: nn.Module) -> None:
        self.state = state

    def label_space(self, pl_module) -> LabelSpace | None:
        return None
    scores_single_images = True  # False: D's inputs (and scores) are packs of images (PacGAN)

    def fit_data(self, n_images: int) -> None:
        """The training set holds `n_images` (known before any work is done): a trick whose
        settings the data cannot support adapts, saying so, or raises a one-line ValueError."""

    def d_img_shape(self, img_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(img_shape)

    def d_input(self, images: torch.Tensor, step: int) -> torch.Tensor:
        return images

    def real_target(self, target: float, step: int) -> float:
        return target

    def d_penalty(self, critic, real, fake, step: int) -> torch.Tensor | float:
        return 0.0

    def real_labels(self, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def generator_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def g_scores(self, scores: torch.Tensor, step: int) -> torch.Tensor:
        return scores

    def g_penalty(self, fake, labels, step: int) -> torch.Tensor | float:
        return 0.0

    def g_parameters(self) -> list[nn.Parameter]:
        return []

    def d_parameters(self) -> list[nn.Parameter]:
        return []

    def sampling_generator(self, generator: torch.nn.Module) -> torch.nn.Module:
        return generator
