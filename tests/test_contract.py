"""The one model contract (gan/io/image_model.py, gan/io/spec.py): every consumer takes an
ImageModel, any image shape gets metrics, grids, generate, evaluate and export, a second family
needs no edit outside its own file, and checkpoints from before keep loading."""

import json
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from gan.data.images import MNIST
from gan.io.checkpoint import OLD_TRICK_STATE
from gan.io.image_model import ImageModel, load_image_model
from gan.io.spec import ImageSpec, LabelSpace
from gan.io.usage import UsageError
from gan.metrics.callback import Metrics
from gan.runs.wiring import fit
from gan.sampling.grids import SampleGrid
from gan.sampling.walks import Interpolation
from tests.conftest import REPO, data_root, needs_mnist, run_module
from tests.toy_family import PixelGaussian

COLOUR = ["data.img_shape=[3,32,32]", "model.generator.width=8",
          "model.discriminator.width=8", "tricks.self_cond.n_images=128",
          "tricks.self_cond.clusters=4"]


def test_the_grep_finds_no_gan_attribute_read_off_the_module_in_consumers():
    pattern = re.compile(r"pl_module\.(generator|discriminator|latent_dim|fixed_z|label_prior|"
                         r"cluster_)")
    hits = [f"{path}:{i}" for package in ("metrics", "sampling", "runs", "sweeps")
            for path in sorted((REPO / "gan" / package).rglob("*.py"))
            for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_a_spec_round_trips_and_its_labels_are_drawn_as_declared():
    spec = ImageSpec.of([3, 32, 32], LabelSpace("clusters", 3, (0.5, 0.25, 0.25)))
    assert ImageSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    drawn = spec.labels.sample(8000, seed=1)
    assert abs((drawn == 0).float().mean().item() - 0.5) < 0.03
    assert LabelSpace("classes", 4).cycled(6).tolist() == [0, 1, 2, 3, 0, 1]
    with pytest.raises(ValueError, match="needs 2 entries"):
        LabelSpace("clusters", 2, (1.0,))


def test_colour_images_train_on_the_default_recipe_with_metrics_and_grids(fast_cfg, tmp_path):
    cfg = fast_cfg(*COLOUR)
    _, module = fit(cfg)
    assert isinstance(module, ImageModel) and module.spec.shape == (3, 32, 32)
    assert module.spec.labels.kind == "clusters"  # the default's self-conditioning
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["metrics"]) >= {"pixel_mean", "pixel_std", "pixel_mean_gap"}
    assert "fid" in report["absent"] and "3x32x32" in report["absent"]["fid"]
    assert report["protocol"]["spec"]["shape"] == [3, 32, 32]
    grid = Image.open(tmp_path / "samples" / "final.png")
    assert grid.mode == "RGB"
    pixels = torch.tensor(list(grid.getdata()), dtype=torch.float32)
    assert (pixels[:, 0] - pixels[:, 1]).abs().max() > 0  # colour, not grey in three channels
    model = load_image_model(tmp_path / "checkpoints" / "last.ckpt")
    assert model.spec == module.spec and model.draw(5, seed=2).shape == (5, 3, 32, 32)
    assert torch.equal(model.draw(5, seed=2), module.draw(5, seed=2))


def test_an_extractor_for_another_shape_is_refused_in_one_line(fast_cfg):
    with pytest.raises(UsageError, match=r"metrics.extractor=mnist reads 1x28x28 images, but "
                                         r"the model draws 3x32x32") as err:
        fit(fast_cfg(*COLOUR, "metrics.extractor=mnist"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model", ["dcgan", "resnet", "sagan"])
def test_a_shape_a_net_cannot_build_is_refused_in_one_line(fast_cfg, model):
    with pytest.raises(UsageError, match=rf"model={model}.*square.*32x28") as err:
        fit(fast_cfg(f"model={model}", "data.img_shape=[3,32,28]"))
    assert "\n" not in str(err.value)


def test_an_unknown_family_is_refused_in_one_line(tmp_path):
    torch.save({"state_dict": {}, "image_model": {"family": "diffusion"}}, tmp_path / "x.ckpt")
    with pytest.raises(UsageError, match="model family 'diffusion' is unknown") as err:
        load_image_model(tmp_path / "x.ckpt")
    assert "\n" not in str(err.value)


def test_a_checkpoint_with_trick_state_from_before_the_contract_loads_alike(fast_cfg, tmp_path):
    _, module = fit(fast_cfg())  # the default: self_cond + ema state
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    old = {}
    for key, value in ckpt["state_dict"].items():  # written the way the old code wrote it
        for before, now in OLD_TRICK_STATE.items():
            if key.startswith(now):
                key = before + key[len(now):]
                break
        old[key] = value
    assert any(k.startswith("generator_ema.") for k in old) and "label_prior" in old
    ckpt["state_dict"] = old
    del ckpt["image_model"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    restored = load_image_model(tmp_path / "old.ckpt")
    assert restored.spec == module.spec
    assert torch.equal(restored.draw(6, seed=4), module.draw(6, seed=4))
    # and a run resumes from it: its EMA and clusters land under trick_state
    _, resumed = fit(fast_cfg(f"ckpt_path={tmp_path / 'old.ckpt'}", "trainer.max_epochs=2"))
    assert resumed.trick_state["self_cond"].centres.abs().sum() > 0


def test_the_shipped_before_layers_checkpoint_still_draws():
    ckpt = REPO / "tests" / "fixtures" / "before_layers" / "run" / "checkpoints" / "last.ckpt"
    model = load_image_model(ckpt)
    assert isinstance(model, ImageModel)
    assert model.draw(4, seed=0).shape == (4, *model.spec.shape)


@needs_mnist
def test_a_second_family_gets_metrics_grids_generate_evaluate_and_export(tmp_path):
    data = MNIST(root=str(data_root()), download=False, batch_size=500, on_device=False)
    model = PixelGaussian()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=20, logger=False,
                        enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, accelerator="cpu",
                        callbacks=[Metrics("mnist", every_n_epochs=None, n_final=2000),
                                   SampleGrid(every_n_epochs=None, n=16),
                                   Interpolation(pairs=2, steps=4)])
    trainer.fit(model, datamodule=data)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["model"]["family"] == "pixel_gaussian"
    assert 0 < report["metrics"]["fid"] < 1e4 and "absent" not in report
    for png in ("final.png", "real.png", "interpolation.png"):
        assert (tmp_path / "samples" / png).is_file()
    ckpt = tmp_path / "toy.ckpt"
    trainer.save_checkpoint(ckpt)
    run_module("gan.generate", f"ckpt_path={ckpt}", "n=16", f"out={tmp_path / 'g.png'}",
               cwd=REPO)
    assert Image.open(tmp_path / "g.png").size[0] > 28
    run_module("gan.evaluate", f"ckpt_path={ckpt}", "n=1000", f"out={tmp_path / 'e.json'}",
               cwd=REPO)
    scored = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert abs(scored["fid"] - report["metrics"]["fid"]) < 0.5 * report["metrics"]["fid"]
    run_module("gan.export", f"ckpt_path={ckpt}", "format=torchscript",
               f"out={tmp_path / 'toy.pt'}", cwd=REPO)
    exported = torch.jit.load(str(tmp_path / "toy.pt"))
    assert exported(torch.zeros(2, 784)).shape == (2, 1, 28, 28)


@pytest.mark.slow
def test_colour_as_typed_trains_and_every_entry_point_reads_it(tmp_path):
    run = tmp_path / "run"
    run_module("gan.train", "data=fake", "data.img_shape=[3,32,32]", f"hydra.run.dir={run}",
               cwd=REPO, timeout=900)
    report = json.loads((run / "metrics.json").read_text())
    assert "fid" in report["absent"] and report["protocol"]["spec"]["shape"] == [3, 32, 32]
    ckpt = run / "checkpoints" / "last.ckpt"
    run_module("gan.generate", f"ckpt_path={ckpt}", "n=16", f"out={tmp_path / 'g.png'}",
               cwd=REPO)
    out = run_module("gan.evaluate", f"ckpt_path={ckpt}", "n=1000",
                     f"out={tmp_path / 'e.json'}", cwd=REPO).stdout
    assert "absent: fid" in out
    run_module("gan.export", f"ckpt_path={ckpt}", "format=torchscript",
               f"out={tmp_path / 'g.pt'}", cwd=REPO)
    refused = subprocess.run([sys.executable, "-m", "gan.evaluate", f"ckpt_path={ckpt}",
                              "extractor=mnist", f"out={tmp_path / 'e2.json'}"], cwd=REPO,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "reads 1x28x28 images" in refused.stderr


def test_every_consumer_module_takes_the_contract_not_the_gan():
    # The consumers import no GAN class: what they use is the contract.
    for package in ("metrics", "sampling"):
        for path in (REPO / "gan" / package).rglob("*.py"):
            assert "from gan.core.module import" not in path.read_text(), path
    assert Path(REPO / "gan" / "io" / "image_model.py").is_file()


@needs_mnist
def test_stacked_mnist_real_triples_cover_the_modes_the_papers_count(tmp_path):
    from gan.data.stacked import StackedMNIST
    from gan.metrics.scores import compute_metrics

    data = StackedMNIST(root=str(data_root()), download=False)
    real = data.load(train=True)[0][:2000]  # triples of training digits vs the test triples'
    values = compute_metrics(real.float() / 127.5 - 1, "stacked_mnist", n=2000,
                             root=str(data_root()), cache=tmp_path, extractor="stacked_mnist")
    # 2,000 uniform draws over 1,000 modes fill 1000 (1 - e^-2) = 865 of them on average
    assert 800 < values["modes"] <= 1000 and values["mode_kl"] < 0.6
    # the floor beside it: the 2,000 test triples' own true modes, as many and as spread
    assert 800 < values["modes_real"] <= 1000
    assert abs(values["mode_kl"] - values["mode_kl_real"]) < 0.1
    # FID of 384-d features is biased upwards at n=2000: real vs real measured 23
    assert values["fid"] < 40 and values["precision"] > 0.5


def test_a_one_channel_extractor_on_stacked_mnist_is_refused_naming_both_shapes(fast_cfg):
    with pytest.raises(UsageError, match=r"metrics.extractor=mnist reads 1x28x28 images, but "
                                         r"the model draws 3x28x28"):
        fit(fast_cfg("data.img_shape=[3,28,28]", "metrics.extractor=mnist",
                     "tricks.self_cond.n_images=128", "tricks.self_cond.clusters=4"))


def test_docs_layout_lists_every_module():
    text = (REPO / "docs" / "layout.md").read_text()
    missing = [str(p.relative_to(REPO)) for p in sorted((REPO / "gan").rglob("*.py"))
               if p.name != "__init__.py" and f"`{p.name}`" not in text
               and f"`{p.relative_to(REPO)}`" not in text]
    assert missing == []


def test_no_consumer_finds_another_callback_by_scanning_the_trainer():
    # callbacks that need each other get each other in the one wiring function
    for path in (REPO / "gan").rglob("*.py"):
        text = path.read_text()
        assert "isinstance(c, Clock)" not in text and "final_metrics(trainer)" not in text, path
