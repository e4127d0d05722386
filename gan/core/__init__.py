"""The GAN itself: the LightningModule and its one training step, the losses, the Trick
contract, gradient penalties, the step guard, random streams and drawing helpers."""
