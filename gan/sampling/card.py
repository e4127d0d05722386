"""What an exported generator is: its label space (which the file itself carries, as metadata)
and the model card `<out>.md` written beside it (recipe, data, budget, metrics with their
protocol, seed, the group's spread over seeds, versions, sha256, how to run it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf

from gan.io.artefacts import read_status
from gan.io.image_model import ImageModel


def config_of(model: ImageModel) -> dict:
    """The resolved config a family keeps (the GAN's stored one), else {}."""
    return getattr(model, "config", None) or {}


def label_space(model: ImageModel) -> dict:
    """What `labels` means, from the model's spec: none (unconditional), the data's classes, or
    k cluster ids of a pseudo-label trick with their frequencies (`label_prior`, which sampling
    draws from: the clusters are unequal and are not digits)."""
    labels = model.spec.labels
    if labels.kind == "none":
        return {"kind": "none"}
    if labels.kind == "classes":
        return {"kind": "classes", "n": int(labels.k),
                "dataset": config_of(model).get("data", {}).get("name")}
    total = sum(labels.prior)
    return {"kind": "clusters", "k": int(labels.k),
            "label_prior": [float(p) / total for p in labels.prior]}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_dir_of(ckpt_path: str | Path) -> Path | None:
    """The run folder a checkpoint was written in (`<run dir>/checkpoints/x.ckpt`)."""
    path = Path(ckpt_path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def recipe(model: ImageModel, run_dir: Path | None) -> tuple[dict, list[str]]:
    """The composed config's choices (`loss: bce`, ...) and the command line's overrides, from
    the run folder's `.hydra/`; without it, the classes the stored config names."""
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml" if run_dir else None
    if hydra_yaml is not None and hydra_yaml.is_file():
        hydra = OmegaConf.load(hydra_yaml).hydra
        choices = {k: v for k, v in OmegaConf.to_container(hydra.runtime.choices).items()
                   if not k.startswith("hydra") and v is not None}
        # list groups are not among Hydra's choices: the stored config names them
        choices["tricks"] = f"[{','.join(config_of(model).get('tricks') or {})}]"
        return choices, list(hydra.overrides.task)
    cfg = config_of(model)
    if not cfg.get("model"):  # a family without a stored config: what it says of itself
        return {"family": model.describe().get("family", type(model).__name__)}, []
    parts = {"model": cfg.model.generator.get("_target_"), "loss": cfg.loss.get("_target_"),
             "tricks": ",".join(cfg.get("tricks") or {}) or "none"}
    return {k: str(v).rsplit(".", 1)[-1] for k, v in parts.items()}, []


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _budget(status: dict) -> str:
    budget = status.get("budget") or {}
    spent = ", ".join(f"{k} {_fmt(status[k])}" for k in ("images_seen", "g_step", "train_s",
                                                           "wall_s") if k in status)
    head = f"{budget.get('kind')}={budget.get('value')}" if budget else "as configured"
    return f"{head}; spent: {spent or 'not recorded'}"


def _labels(space: dict) -> str:
    if space["kind"] == "none":
        return "none: unconditional, one input `z`"
    if space["kind"] == "classes":
        return f"the data's {space['n']} classes (`labels` 0..{space['n'] - 1})"
    prior = space["label_prior"]
    return (f"{space['k']} cluster ids of self-conditioning, not digits; draw them at their "
            f"data frequency `label_prior` (in the file's metadata; here rounded): "
            f"{', '.join(f'{p:.3f}' for p in prior)}")


def card(out: Path, fmt: str, model: ImageModel, ckpt_path: str, space: dict,
         versions: dict, group: dict | None = None) -> str:
    """The model card's text. `group`: the spread of the run's group over seeds where the run
    belongs to a sweep (computed by the entry point from gan.sweeps)."""
    run_dir = run_dir_of(ckpt_path)
    status = read_status(run_dir) if run_dir else {}
    metrics_path = run_dir / "metrics.json" if run_dir else None
    final = json.loads(metrics_path.read_text()) if metrics_path and metrics_path.is_file() \
        else {}
    choices, overrides = recipe(model, run_dir)
    cfg = config_of(model)
    spec = model.spec
    rows = [
        ("file", f"`{out.name}`, {fmt}, {out.stat().st_size / 1024:.0f} KiB"),
        ("sha256", f"`{sha256(out)}`"),
        ("from", f"`{ckpt_path}` ({model.describe().get('draws_with', 'model')} weights)"),
        ("recipe", " ".join(f"{k}={v}" for k, v in sorted(choices.items()))),
        ("overrides", " ".join(overrides) or "none"),
        ("data", f"{cfg.get('data', {}).get('name')}, images {spec.shape} "
                 f"(C, H, W) in [-1, 1]"),
        ("inputs", f"`z` (batch, {model.latent_dim}) float32 ~ N(0, 1)"
                   + ("" if space["kind"] == "none" else ", `labels` (batch,) int64")),
        ("labels", _labels(space)),
        ("budget", _budget(status)),
        ("status", status.get("status", "not recorded")),
        ("seed", str(cfg.get("seed"))),
    ]
    if final.get("metrics"):
        rows.append(("final metrics", ", ".join(f"{k} {_fmt(v)}"
                                                for k, v in final["metrics"].items())))
        stamp = final.get("protocol") or {}
        rows.append(("protocol", ", ".join(f"{k} {json.dumps(v) if isinstance(v, dict) else v}"
                                           for k, v in stamp.items()) or "not recorded"))
    else:
        rows.append(("final metrics", "none recorded (no metrics.json beside the checkpoint)"))
    if group:
        rows.append(("group", f"{group['variant']} in sweep `{group['sweep']}`: FID mean "
                              f"{_fmt(group['mean'])}, min {_fmt(group['min'])}, max "
                              f"{_fmt(group['max'])} over seeds "
                              f"{', '.join(str(s) for s in group['seeds'])}"))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (f"# Model card: {out.name}\n\n| | |\n| --- | --- |\n{table}\n\n"
            f"## Run it\n\n{how_to_run(out, fmt, space, model.latent_dim)}")


def how_to_run(out: Path, fmt: str, space: dict, latent_dim: int) -> str:
    if fmt == "onnx":
        lines = ["```python", "import json", "", "import numpy as np",
                 "import onnxruntime as ort", "",
                 f'session = ort.InferenceSession("{out.name}")',
                 "meta = session.get_modelmeta().custom_metadata_map",
                 'space = json.loads(meta["label_space"])  # none | classes | clusters',
                 "rng = np.random.default_rng(0)",
                 f"z = rng.standard_normal((10, {latent_dim})).astype(np.float32)",
                 'feed = {"z": z}']
    else:
        lines = ["```python", "import json", "", "import numpy as np", "import torch", "",
                 'extra = {"label_space.json": ""}',
                 f'model = torch.jit.load("{out.name}", _extra_files=extra)',
                 'space = json.loads(extra["label_space.json"])  # none | classes | clusters',
                 "rng = np.random.default_rng(0)",
                 f"z = rng.standard_normal((10, {latent_dim})).astype(np.float32)",
                 'feed = {"z": z}']
    lines += ['if space["kind"] == "clusters":  # cluster ids at their data frequency',
              '    p = np.array(space["label_prior"])',
              '    feed["labels"] = rng.choice(space["k"], size=10, p=p / p.sum())',
              'elif space["kind"] == "classes":  # one of each class, cycled',
              '    feed["labels"] = np.arange(10) % space["n"]']
    if fmt == "onnx":
        lines += ['(images,) = session.run(["images"], feed)  # (10, C, H, W) in [-1, 1]', "```"]
    else:
        lines += ["with torch.no_grad():",
                  "    images = model(*(torch.from_numpy(np.asarray(x)) for x in feed.values()))",
                  "```"]
    return "\n".join(lines) + "\n"
