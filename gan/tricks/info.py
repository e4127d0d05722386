"""InfoGAN's categorical code (Chen et al. 2016, "InfoGAN: Interpretable Representation Learning
by Information Maximizing Generative Adversarial Nets"): an unsupervised discrete latent.

G is given a random code c ~ Uniform{0..K-1} next to z (through its label input, so it needs
`model.generator.conditional=true`; D stays unconditional and never sees a label). Q reads the
fake image and predicts c. The paper's objective (its eq. 5) is

    min_{G,Q} max_D  V(D, G) - lambda * L_I(G, Q),    L_I = E[log Q(c | G(z, c))] + H(c),

a variational lower bound on the mutual information I(c; G(z, c)). With H(c) constant, the
term both players minimise is `weight * CE(Q(G(z, c)), c)`.

As the paper builds it (its section 4 and appendix C.1, and the authors' code, openai/InfoGAN):
- Q is a head on D's trunk: D's conv features, flattened, then FC 128, BatchNorm, LeakyReLU 0.1,
  FC K (the MNIST head). Sharing the trunk makes Q nearly free, and the trunk's features, trained
  to tell real from fake, are trained to tell the codes apart too.
- The term is in both losses. In D's step (on the detached fakes) it trains D's trunk and Q's
  head, which D's optimizer holds (`d_parameters`); in G's step it trains G alone: D's
  optimizer's weights, Q's head among them, are frozen there. This is the authors' code: Q's
  variables live in D's scope, so D's optimizer steps them on D's loss minus lambda * MI, and G's
  optimizer, which holds only G's variables, steps G on G's loss minus the same term.
- Adam with lr 2e-4 for D and 1e-3 for G, beta1 0.5; lambda = 1 for a discrete code. The
  variants conf/variant/info_w01, info_w03, info_w1 set these (lambda 0.1, 0.3, 1).

The head is the trick's state, `trick_state.info` (so it moves with the device, is wrapped
by DDP and saved
in checkpoints). Checkpoints of the earlier design (a separate Q net, `code_predictor.*`, trained
by G's optimizer) are refused with one line (gan/io/legacy.py RETIRED). The real labels are never
used: with `model.generator.conditional=true` grids get one row per code, and
`gan.generate label=k` draws code k, which is a cluster the GAN found, not digit k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.core.trick import Trick


class CodeHead(nn.Module):
    """Q's own layers on D's flattened trunk features: the paper's MNIST head, FC 128, BatchNorm,
    LeakyReLU 0.1, FC K (K logits)."""

    def __init__(self, features: int, codes: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden, bias=False),  # BatchNorm's shift makes a bias redundant
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(hidden, codes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # (B, K)


class InfoGAN(Trick):
    """`tricks=[info]`: a K-way code for G (K = the data's class count, the size of G's label
    embedding) whose mutual information with the image is maximised with weight `weight`, by Q,
    a `hidden`-unit head on D's trunk."""

    def __init__(self, weight: float = 1.0, hidden: int = 128):
        if weight <= 0 or hidden < 1:
            raise ValueError(f"tricks.info needs weight > 0 and hidden >= 1, got weight={weight}, "
                             f"hidden={hidden}")
        self.weight, self.hidden = weight, hidden
        self.codes = 0
        self.trunk: nn.Module | None = None
        self.head: CodeHead | None = None
        self.drawn: torch.Tensor | None = None  # the codes G was given this training step

    def setup(self, trainer, pl_module, stage):
        generator, discriminator = pl_module.generator, pl_module.discriminator
        if not getattr(generator, "conditional", False):
            raise ValueError("tricks=[info] feeds G a code through its label input: set "
                             "model.generator.conditional=true (D stays unconditional)")
        if getattr(discriminator, "conditional", False):
            raise ValueError("tricks=[info] is unsupervised: D must not see the real labels; "
                             "set model.discriminator.conditional=false (not model.conditional)")
        if not callable(getattr(discriminator, "trunk", None)):
            raise ValueError(f"tricks=[info] puts Q on D's feature trunk (`trunk()`), which "
                             f"{type(discriminator).__module__}.{type(discriminator).__name__} "
                             f"does not have: use model=dcgan")
        trunk = discriminator.trunk()
        self.codes, self.trunk = pl_module.hparams.num_classes, trunk

    state_name = "info"

    def build_state(self, pl_module) -> nn.Module:
        return CodeHead(self._trunk_width(self.trunk, pl_module.hparams.img_shape), self.codes,
                        self.hidden)

    def bind_state(self, state: nn.Module) -> None:
        self.state = self.head = state

    @staticmethod
    def _trunk_width(trunk: nn.Module, img_shape) -> int:
        """The trunk's flattened feature count, read off one probe image in eval mode (a
        training-mode pass would move D's BatchNorm running statistics)."""
        was_training = trunk.training
        probe = torch.zeros(1, *img_shape, device=next(trunk.parameters()).device)
        try:
            with torch.no_grad():
                return trunk.eval()(probe).flatten(1).shape[1]
        finally:
            trunk.train(was_training)

    def q(self, images: torch.Tensor) -> torch.Tensor:
        """Q's logits for the code of each image: the head on D's flattened trunk features.
        The images as G drew them, without D's input transforms (`d_input`: DiffAugment,
        instance noise): the term is the paper's I(c; G(z, c)), about G's image. Those transforms
        regularise D's real/fake judgement (against memorising a small real set, for overlapping
        supports); Q sees only fakes, and a cutout could erase the very strokes that tell the
        codes apart, a noisier bound for both players."""
        return self.head(self.trunk(images).flatten(1))  # (B, K)

    def generator_labels(self, labels):
        # Uniform codes from the global torch RNG: seeded, and restored on resume like z.
        # Remembered for D's step, which comes next in the same training step: `d_penalty`
        # gets no labels, and widening that hook for every penalty trick (R1, R2, L2) to serve
        # this one would change the contract for all of them.
        self.drawn = torch.randint(self.codes, labels.shape, device=labels.device)
        return self.drawn

    def d_penalty(self, critic, real, fake, step):
        # `fake` is detached: D's trunk and Q's head learn to read the code, G does not move.
        return self.weight * F.cross_entropy(self.q(fake), self.drawn)

    def g_penalty(self, fake, labels, step):
        # D's optimizer's weights (trunk and head) are frozen in G's step: G alone moves.
        return self.weight * F.cross_entropy(self.q(fake), labels)

    def d_parameters(self):
        # The head exists once `setup` ran (Lightning calls it before configure_optimizers)
        return list(self.head.parameters()) if self.head is not None else []
