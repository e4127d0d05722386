"""One file per architecture. Every generator is `G(z, labels) -> images in [-1, 1]` and every
discriminator `D(images, labels) -> logits of shape (B,)`; unconditional nets ignore the labels,
so the training step never asks which kind it has."""
