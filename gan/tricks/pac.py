"""PacGAN (Lin et al., NeurIPS 2018): D judges packs of m samples, never one alone.

Each D input is m images of one kind (all real or all fake) stacked along channels,
(B, C, H, W) -> (B/m, m*C, H, W); D is built for m*C input channels (`d_img_shape`). A pack of
fakes from a generator that drops modes looks less like a pack of reals than any single fake
does, which penalises mode collapse. The batch's consecutive images form the packs: reals come
shuffled and fakes are independent draws, so packs are random.

Refused in one line at build time (before training):
- a batch size that is not a multiple of m (`data.batch_size`): every pack is whole; the data
  already drops an epoch's partial last batch, so one check covers every step;
- a conditional D (`model.conditional=true`, which the default recipe's self-conditioning sets):
  a pack of m images has m labels and a projection D takes one. Giving the pack its first
  image's label would tell D less than the labels say; the paper packs unconditional D's. Use
  `recipe=unconditional` or a tricks list without self_cond.

Put `pac` after the tricks that transform D's inputs per image (instance noise, DiffAugment):
tricks fold in list order, and after packing they see m*C-channel packs. D's scores are per
pack, so discriminator rejection sampling (`sampler=drs`) refuses a pac run.
"""

from __future__ import annotations

import torch

from gan.core.trick import Trick


class Pac(Trick):
    scores_single_images = False

    def __init__(self, degree: int = 2, batch_size: int | None = None,
                 conditional: bool = False):
        super().__init__()
        if isinstance(degree, bool) or not isinstance(degree, int) or not 2 <= degree <= 4:
            raise ValueError(f"tricks.pac.degree={degree} must be 2, 3 or 4 (the images per "
                             f"pack; PacGAN's experiments use 2 to 4)")
        if batch_size is not None and batch_size % degree:
            raise ValueError(f"data.batch_size={batch_size} is not a multiple of "
                             f"tricks.pac.degree={degree}: every pack of D's input must be whole; "
                             f"e.g. data.batch_size={batch_size - batch_size % degree or degree}")
        if conditional:
            raise ValueError(f"tricks.pac packs {degree} images into one D input, but D is "
                             f"conditional (model.conditional=true; the default recipe's "
                             f"self_cond sets it) and takes one label per input: use "
                             f"recipe=unconditional, or a tricks list without self_cond")
        self.degree = degree

    def d_img_shape(self, img_shape):
        channels, *size = img_shape
        return (channels * self.degree, *size)

    def d_input(self, images: torch.Tensor, step: int) -> torch.Tensor:
        b, c, h, w = images.shape
        if b % self.degree:
            raise ValueError(f"tricks.pac: a batch of {b} images does not split into packs of "
                             f"{self.degree}")
        # consecutive images share a pack: (B, C, H, W) -> (B/m, m*C, H, W)
        return images.reshape(b // self.degree, self.degree * c, h, w)
