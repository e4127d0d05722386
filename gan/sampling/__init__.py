"""What a trained generator is used for: the sampler, grids and latent walks, projection of your
image, and export."""
