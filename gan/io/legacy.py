"""What older checkpoints and run folders hold that today's code names otherwise or no longer has:
class paths from before the layered packages (2026-12-02), for their stored configs
(`load_checkpoint`, the dataset registry and the report read them through `current_target`), and
weights of designs that are gone (`RETIRED`, refused by gan.io.checkpoint.refuse_retired)."""

from __future__ import annotations

MOVED = {
    "gan.augment.DiffAugment": "gan.tricks.diffaugment.DiffAugment",
    "gan.bench.SigmoidD": "gan.benchmark.loops.SigmoidD",
    "gan.bench.TutorialDiscriminator": "gan.benchmark.loops.TutorialDiscriminator",
    "gan.bench.TutorialGenerator": "gan.benchmark.loops.TutorialGenerator",
    "gan.bench.Window": "gan.benchmark.loops.Window",
    "gan.budget.Budget": "gan.runs.budget.Budget",
    "gan.callbacks.Metrics": "gan.metrics.callback.Metrics",
    "gan.callbacks.SampleGrid": "gan.sampling.grids.SampleGrid",
    "gan.callbacks.Throughput": "gan.runs.throughput.Throughput",
    "gan.checkpoint.AtomicCheckpointIO": "gan.io.checkpoint.AtomicCheckpointIO",
    "gan.checkpoint.CheckpointError": "gan.io.checkpoint.CheckpointError",
    "gan.checks.UsageError": "gan.io.usage.UsageError",
    "gan.class_grid.ClassGrid": "gan.sampling.grids.ClassGrid",
    "gan.class_grid.SampleGrid": "gan.sampling.grids.SampleGrid",
    "gan.classifier.Classifier": "gan.metrics.classifier.Classifier",
    "gan.classifier._ChecksumError": "gan.metrics.classifier._ChecksumError",
    "gan.data.FakeData": "gan.data.images.FakeData",
    "gan.data.FashionMNIST": "gan.data.images.FashionMNIST",
    "gan.data.ImageDataModule": "gan.data.images.ImageDataModule",
    "gan.data.MNIST": "gan.data.images.MNIST",
    "gan.data.ShuffledBatches": "gan.data.images.ShuffledBatches",
    "gan.data._TorchvisionIDX": "gan.data.images._TorchvisionIDX",
    "gan.export.SamplingGenerator": "gan.sampling.export.SamplingGenerator",
    "gan.export.UnconditionalGenerator": "gan.sampling.export.UnconditionalGenerator",
    "gan.folder_data.AugmentedBatches": "gan.data.folder.AugmentedBatches",
    "gan.folder_data.FolderData": "gan.data.folder.FolderData",
    "gan.folder_data.RandomAffine": "gan.data.folder.RandomAffine",
    "gan.guard.Diverged": "gan.core.guard.Diverged",
    "gan.guard.StepGuard": "gan.core.guard.StepGuard",
    "gan.hparams.HParams": "gan.sweeps.hparams.HParams",
    "gan.interpolation.Interpolation": "gan.sampling.walks.Interpolation",
    "gan.losses.BCE": "gan.core.losses.BCE",
    "gan.losses.GANLoss": "gan.core.losses.GANLoss",
    "gan.losses.Hinge": "gan.core.losses.Hinge",
    "gan.losses.LSGAN": "gan.core.losses.LSGAN",
    "gan.losses.WGAN": "gan.core.losses.WGAN",
    "gan.losses.WGANGP": "gan.core.losses.WGANGP",
    "gan.losses.WGANLP": "gan.core.losses.WGANLP",
    "gan.losses.Wasserstein": "gan.core.losses.Wasserstein",
    "gan.metrics._Precomputed": "gan.metrics.scores._Precomputed",
    "gan.module.GAN": "gan.core.module.GAN",
    "gan.mutual_information.InfoGAN": "gan.tricks.info.InfoGAN",
    "gan.preprocess.Steps": "gan.sampling.preprocess.Steps",
    "gan.projection.Distance": "gan.sampling.projection.Distance",
    "gan.projection.Projection": "gan.sampling.projection.Projection",
    "gan.regularizers.L2Penalty": "gan.tricks.penalties.L2Penalty",
    "gan.regularizers.R1": "gan.tricks.penalties.R1",
    "gan.regularizers.R2": "gan.tricks.penalties.R2",
    "gan.regularizers.ZeroCenteredGradientPenalty":
        "gan.tricks.penalties.ZeroCenteredGradientPenalty",
    "gan.report.Group": "gan.sweeps.report.Group",
    "gan.report.Report": "gan.sweeps.report.Report",
    "gan.report.Run": "gan.sweeps.report.Run",
    "gan.resume.Resumable": "gan.runs.resume.Resumable",
    "gan.sampling.Sampler": "gan.sampling.sampler.Sampler",
    "gan.spectral_norm.SpectralNorm": "gan.tricks.spectral_norm.SpectralNorm",
    "gan.sweep.SweepIndex": "gan.sweeps.index.SweepIndex",
    "gan.train.Interrupted": "gan.runs.wiring.Interrupted",
    "gan.transfer.InitFrom": "gan.runs.init_from.InitFrom",
    "gan.tricks.DiscriminatorDropout": "gan.tricks.dropout.DiscriminatorDropout",
    "gan.tricks.EMA": "gan.tricks.ema.EMA",
    "gan.tricks.FreezeD": "gan.tricks.freeze_d.FreezeD",
    "gan.tricks.InsertedDropout": "gan.tricks.dropout.InsertedDropout",
    "gan.tricks.InstanceNoise": "gan.tricks.instance_noise.InstanceNoise",
    "gan.tricks.LabelSmoothing": "gan.tricks.label_smoothing.LabelSmoothing",
    "gan.tricks.Trick": "gan.core.trick.Trick",
}

# State-dict prefixes of designs that are gone, and what they were: a checkpoint holding them is
# refused in one line before its weights could load into (or be fitted against) today's module.
RETIRED = {
    "code_predictor.": "tricks=[info]'s separate Q net (code_predictor.*, trained by G's "
                       "optimizer), the InfoGAN design before Q became a head on D's trunk "
                       "(2026-12-02)",
}


def current_target(path: str) -> str:
    """The class path a stored `_target_` names today."""
    return MOVED.get(path, path)


def upgrade(node):
    """A stored config (dicts and lists) with every `_target_` rewritten to today's path."""
    if isinstance(node, dict):
        return {k: (current_target(v) if k == "_target_" and isinstance(v, str) else upgrade(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [upgrade(v) for v in node]
    return node
