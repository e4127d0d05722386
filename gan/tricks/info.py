"""InfoGAN's categorical code (Chen et al. 2016): an unsupervised discrete latent.

G is given a random code c ~ Uniform{0..K-1} next to z (through its label input, so it needs
`model.generator.conditional=true`; D stays unconditional and never sees a label). A small net
Q reads the fake image and predicts c. Q and G both minimise `weight * CE(Q(G(z, c)), c)`, a
lower bound on -I(c; G(z, c)) up to a constant: G is pushed to draw the K codes as K visibly
different kinds of image. The hope on MNIST: the codes become the digits, so a single Gaussian
z need not stretch across ten separate classes. Measured (docs/recipes.md): at
weight 1 each code did draw mostly one digit (label purity 0.79-0.80), but G ignored z within a
code (one image per code, recall 0, FID 254-267 after 3 CPU minutes). Try a smaller `weight`.

Q is trained by G's optimizer (`g_parameters`), lives in the module as `code_predictor` (so it
moves with the device, is wrapped by DDP and saved in checkpoints), and is a DCGAN-style
discriminator whose one logit is replaced by K. The real labels are never used: with
`model.generator.conditional=true` grids get one row per code, and `gan.generate label=k`
draws code k, which is a cluster the GAN found, not digit k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.core.trick import Trick
from gan.networks.dcgan import Discriminator


class CodePredictor(nn.Module):
    """Q: image -> K logits, the conv trunk of DCGAN's D with a K-way head."""

    def __init__(self, img_shape, codes: int, width: int = 16):
        super().__init__()
        trunk = Discriminator(img_shape, width=width, norm="batch")
        self.features = trunk.features
        self.head = nn.Linear(trunk.head.in_features, codes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))  # (B, K)


class InfoGAN(Trick):
    """`tricks=[info]`: a K-way code for G (K = the data's class count, the size of G's label
    embedding) whose mutual information with the image is maximised with weight `weight`."""

    def __init__(self, weight: float = 1.0, width: int = 16):
        if weight <= 0 or width < 1:
            raise ValueError(f"tricks.info needs weight > 0 and width >= 1, got weight={weight}, "
                             f"width={width}")
        self.weight, self.width = weight, width
        self.codes = 0
        self.q: CodePredictor | None = None

    def setup(self, trainer, pl_module, stage):
        generator = pl_module.generator
        if not getattr(generator, "conditional", False):
            raise ValueError("tricks=[info] feeds G a code through its label input: set "
                             "model.generator.conditional=true (D stays unconditional)")
        if getattr(pl_module.discriminator, "conditional", False):
            raise ValueError("tricks=[info] is unsupervised: D must not see the real labels; "
                             "set model.discriminator.conditional=false (not model.conditional)")
        self.codes = pl_module.hparams.num_classes
        if getattr(pl_module, "code_predictor", None) is None:  # not again on fit after fit
            pl_module.code_predictor = CodePredictor(pl_module.hparams.img_shape, self.codes,
                                                     self.width)
        self.q = pl_module.code_predictor

    def generator_labels(self, labels):
        # Uniform codes from the global torch RNG: seeded, and restored on resume like z.
        return torch.randint(self.codes, labels.shape, device=labels.device)

    def g_penalty(self, fake, labels, step):
        return self.weight * F.cross_entropy(self.q(fake), labels)

    def g_parameters(self):
        # Q exists once `setup` ran (Lightning calls it before configure_optimizers)
        return list(self.q.parameters()) if self.q is not None else []
