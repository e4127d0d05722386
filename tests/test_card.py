"""Every export has its model card, and carries the label space sampling needs: the docs'
onnxruntime example, run as written, draws the default recipe's cluster ids from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gan.io.artefacts import protocol, write_metrics
from tests.conftest import REPO

# The default recipe (self-conditioned on k-means clusters), shrunk: tiny nets, 5 clusters.
TINY_DEFAULT = ["data=fake", "data.n=128", "data.batch_size=16", "trainer.accelerator=cpu",
                "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                "n_fixed=16", "model.latent_dim=8", "model.generator.width=4",
                "model.discriminator.width=4", "tricks.self_cond.n_images=128",
                "tricks.self_cond.clusters=5"]


def docs_example() -> str:
    """docs/your_image.md's onnxruntime example, as written."""
    text = (REPO / "docs" / "your_image.md").read_text()
    return re.search(r"```python\n(import json\n.*?ort\.InferenceSession.*?)```", text,
                     re.S).group(1)


@pytest.mark.slow  # a 2-seed sweep, then ONNX and TorchScript exports: ~40 s on 2 busy cores
def test_the_card_and_the_label_space_of_a_default_recipe_export(tmp_path, run_main):
    pytest.importorskip("onnxscript", reason="the [export] extra is not installed")
    sweep = tmp_path / "sweep"
    code, _, err = run_main("gan.train", "-m", *TINY_DEFAULT, "seed=0,1",
                            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert code == 0, err
    stamp = protocol("fake", "sha-of-extractor", 10000, "test", "ema", 0)
    jobs = {}
    for seed, fid in ((0, 30.0), (1, 40.0)):  # fake data has no classifier: metrics by hand
        [jobs[seed]] = sweep.glob(f"{seed}_seed={seed},*")  # then the shared overrides
        write_metrics(jobs[seed] / "metrics.json", {"fid": fid}, stamp)
    ckpt = jobs[0] / "checkpoints" / "last.ckpt"
    out = tmp_path / "export" / "generator.onnx"
    code, _, err = run_main("gan.export", f"ckpt_path='{ckpt}'", f"out={out}", cwd=tmp_path)
    assert code == 0, err

    card = (tmp_path / "export" / "generator.onnx.md").read_text()
    import hashlib

    import lightning
    import torch
    rows = dict(re.findall(r"^\| ([^|]+) \| (.*) \|$", card, re.M))
    assert rows["sha256"] == f"`{hashlib.sha256(out.read_bytes()).hexdigest()}`"
    assert "tricks=[ema,self_cond]" in rows["recipe"] and "model=dcgan" in rows["recipe"]
    assert rows["data"].startswith("fake, images (1, 28, 28)")
    assert rows["labels"].startswith("5 cluster ids") and rows["seed"] == "0"
    assert rows["budget"].startswith("epochs=1; spent: images_seen 32, g_step 2, train_s")
    assert rows["final metrics"] == "fid 30" and "extractor sha-of-extractor" in rows["protocol"]
    assert rows["group"] == "all in sweep `sweep`: FID mean 35, min 30, max 40 over seeds 0, 1"
    assert rows["versions"] == f"torch {torch.__version__}, lightning {lightning.__version__}"

    space = json.loads((tmp_path / "export" / "generator.onnx.json").read_text())["label_space"]
    assert space["kind"] == "clusters" and space["k"] == 5
    assert abs(sum(space["label_prior"]) - 1) < 1e-9
    # The docs' example, as written, beside the exported file: labels from the prior
    script = docs_example() + "\nprint(json.dumps([list(images.shape), feed['labels'].tolist()]))"
    proc = subprocess.run([sys.executable, "-c", script], cwd=out.parent, capture_output=True,
                          text=True, timeout=120, check=True)
    shape, labels = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shape == [10, 1, 28, 28] and len(labels) == 10 and set(labels) <= set(range(5))

    # TorchScript carries the same label space inside the archive
    pt = tmp_path / "export" / "generator.pt"
    code, _, err = run_main("gan.export", f"ckpt_path='{ckpt}'", "format=torchscript",
                            f"out={pt}", cwd=tmp_path)
    assert code == 0, err
    extra = {"label_space.json": ""}
    torch.jit.load(str(pt), _extra_files=extra)
    assert json.loads(extra["label_space.json"]) == space
    assert "torch.jit.load" in Path(f"{pt}.md").read_text()
