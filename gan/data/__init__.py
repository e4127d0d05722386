"""Data modules (tensor-resident MNIST/Fashion-MNIST, synthetic data, your own folder) and the
dataset registry."""
