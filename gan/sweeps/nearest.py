"""The report's memorisation picture, `nearest.png`: per group, a row of samples above the
training images nearest to them.

For each of the top `NEAREST_GROUPS` groups, the first ok run (in run order) with a
`checkpoints/last.ckpt` is loaded through `load_image_model`; it draws `NEAREST_SAMPLES` images
with a fixed seed; each is matched with its nearest training image in the features of the run's
own extractor (metrics.json's `protocol.extractor_name` and `protocol.dataset`: the features its
`memorisation_ratio` was measured in), and the pixels of that training image are fetched from
the data module. An FID gain from copying shows as near-identical pairs.

A group whose run has no checkpoint, no extractor (pixel statistics only), data without a
registry name, or a data root that is missing is skipped with a one-line note (`nearest_rows`
returns the notes): the report never fails for this picture.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

NEAREST_GROUPS = 6    # the top groups pictured (each loads a checkpoint and a training split)
NEAREST_SAMPLES = 8   # samples per group
NEAREST_SEED = 0      # the samples' seed: the same images every time the report is written
CKPT = Path("checkpoints") / "last.ckpt"


def _root(run) -> Path | None:
    """The data root the run trained from (its resolved `data.root`), else $GAN_DATA_DIR or
    ./data; None when none of them is a folder."""
    from gan.data.images import default_root

    for candidate in (run.config.get("data.root"), default_root()):
        if isinstance(candidate, str) and "${" not in candidate and \
                Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser()
    return None


def pick_run(group):
    """The group's first ok run (in run order) that kept `checkpoints/last.ckpt`, or None."""
    return next((r for r in group.runs if r.status == "ok" and (r.dir / CKPT).is_file()), None)


def why_not(group) -> str:
    """Why no run of `group` can be pictured ("" when one can)."""
    if not any(r.status == "ok" for r in group.runs):
        return "no ok run"
    run = pick_run(group)
    if run is None:
        return f"no ok run kept {CKPT}"
    from gan.data.registry import DATASETS

    if not run.protocol.get("extractor_name"):
        return (f"`{run.dir.name}`'s metrics.json names no feature extractor (pixel statistics "
                "only, or written before the stamp)")
    if run.protocol.get("dataset") not in DATASETS:
        return (f"`{run.dir.name}`'s data ({run.protocol.get('dataset')}) has no registered "
                "training split to search")
    if _root(run) is None:
        return (f"the data root of `{run.dir.name}` ({run.config.get('data.root')}) is missing "
                f"(and GAN_DATA_DIR={os.environ.get('GAN_DATA_DIR', '<unset>')} too)")
    return ""


def nearest_row(group, train_cache: dict, n: int = NEAREST_SAMPLES,
                seed: int = NEAREST_SEED) -> dict:
    """One group's samples and their nearest training images, (n, C, H, W) in [-1, 1]."""
    import torch

    from gan.data.images import to_unit_range
    from gan.data.registry import DATASETS
    from gan.io.image_model import load_image_model
    from gan.metrics import extractors
    from gan.metrics.memorisation import nearest
    from gan.metrics.scores import extract, real_features

    run = pick_run(group)
    dataset, name, root = run.protocol["dataset"], run.protocol["extractor_name"], _root(run)
    model = load_image_model(run.dir / CKPT)
    with torch.no_grad():
        samples = model.draw(n, seed=seed).float().cpu()
        features = extract(extractors.load(name), samples)[0]
    train_features = real_features(dataset, str(root), "train", extractor=name)
    distances, idx = nearest(features, train_features)
    key = (dataset, str(root))
    if key not in train_cache:  # the training pixels, once per data root in one report
        train_cache[key] = DATASETS[dataset](root=str(root), download=False).load(train=True)[0]
    pixels = to_unit_range(train_cache[key][idx.cpu()])
    ratios = group.stats.get("memorisation_ratio")
    return {"group": group.id, "label": group.label, "run": run.dir.name,
            "ratio": ratios.median if ratios is not None else math.nan,
            "samples": samples, "nearest": pixels, "distances": distances}


def nearest_rows(groups, limit: int = NEAREST_GROUPS) -> tuple[list[dict], list[str]]:
    """Rows for the top `limit` groups, and a one-line note for each group skipped (why)."""
    rows, notes, train_cache = [], [], {}
    for group in groups[:limit]:
        reason = why_not(group)
        if not reason:
            try:
                rows.append(nearest_row(group, train_cache))
                continue
            except Exception as err:  # noqa: BLE001 (a picture never fails the report)
                first = (str(err).splitlines() or [""])[0][:160]
                reason = f"could not draw or match samples ({type(err).__name__}: {first})"
        notes.append(f"{group.id} ({group.label}) skipped in nearest.png: {reason}")
    if len(groups) > limit:
        notes.append(f"{len(groups) - limit} lower-ranked group(s) not pictured (the top "
                     f"{limit} only)")
    return rows, notes


def _image(x):
    """(C, H, W) in [-1, 1] -> what imshow takes: (H, W) grey or (H, W, 3) colour, in [0, 1]."""
    x = ((x.float().clamp(-1, 1) + 1) / 2).numpy()
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)[..., :3]


def plot_nearest(rows: list[dict], path: Path) -> None:
    """Per group: its label and memorisation ratio, the samples, their nearest training
    images below them (with the feature distance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(r["samples"]) for r in rows)
    fig = plt.figure(figsize=(cols * 1.1, len(rows) * 2.6), dpi=100)
    subfigs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
    for sub, row in zip(subfigs, rows):
        ratio = "–" if not math.isfinite(row["ratio"]) else f"{row['ratio']:.3g}"
        sub.suptitle("\n".join(textwrap.wrap(
            f"{row['group']}: {row['label']} — memorisation ratio {ratio} (run "
            f"{row['run']})", 110)[:2]), fontsize=8)
        axes = sub.subplots(2, cols, squeeze=False)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        for j in range(len(row["samples"])):
            axes[0, j].imshow(_image(row["samples"][j]), cmap="gray", vmin=0, vmax=1)
            axes[1, j].imshow(_image(row["nearest"][j]), cmap="gray", vmin=0, vmax=1)
            axes[1, j].set_xlabel(f"d {float(row['distances'][j]):.3g}", fontsize=6)
        axes[0, 0].set_ylabel("sample", fontsize=7)
        axes[1, 0].set_ylabel("nearest train", fontsize=7)
    fig.savefig(path)
    plt.close(fig)
