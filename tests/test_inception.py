"""Optional Inception FID (gan/metrics/inception.py). The error paths always run; the plumbing test
needs torch-fidelity (not in `.[dev]`: skipped on CI) and builds the Inception architecture with
random weights offline (the real weights are never downloaded), so its values mean nothing
beyond ordering: two sets of the same smooth images are closer than smooth vs uniform noise."""

from __future__ import annotations

import sys

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from gan.metrics import inception


def test_missing_weights_names_option_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # not needed to fail on the path
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(FileNotFoundError, match="inception_weights=.*never downloaded"):
        inception.inception_fid(x, x, tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match="inception_weights=None"):
        inception.inception_fid(x, x, None)


def test_unreadable_or_foreign_weights(tmp_path):
    torn = tmp_path / "torn.pth"
    torn.write_bytes(b"not a checkpoint")
    with pytest.raises(FileNotFoundError, match="unreadable.*never downloaded"):
        inception.check_weights(torn)
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(10, 5)}, foreign)
    with pytest.raises(ValueError, match="not an Inception"):
        inception.check_weights(foreign)


def test_missing_torch_fidelity_names_the_extra(tmp_path, monkeypatch):
    weights = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, weights)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import raises ImportError
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[inception\]"'):
        inception.inception_fid(x, x, weights)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Inception-v3 (torch-fidelity's layout) with random He-initialised weights, saved as the
    state dict `feature_extractor_weights_path` loads. Any download attempt fails the test."""
    pytest.importorskip("torch_fidelity")
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    empty = path.with_name("empty.pth")
    torch.save({}, empty)
    torch.manual_seed(0)
    no_download = mock.patch.object(
        fe, "load_state_dict_from_url", side_effect=AssertionError("tried to download")
    )
    skip_load = mock.patch.object(
        fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None
    )
    with no_download, skip_load:
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], empty)
    for m in net.modules():  # torch's default init shrinks activations layer by layer
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


def test_inception_fid_orders_near_and_far(random_weights, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download"))
    g = torch.Generator().manual_seed(0)

    def smooth(n):  # blurry strokes-like blobs in [-1, 1]
        return (
            (gaussian_blur(torch.rand(n, 1, 28, 28, generator=g), 9, 3.0) * 2 - 1)
            .mul(6)
            .clamp(-1, 1)
        )

    a, b = smooth(16), smooth(16)
    noise = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
    near = inception.inception_fid(b, a, random_weights, batch=16)
    far = inception.inception_fid(noise, a, random_weights, batch=16)
    assert 0 <= near < far, (near, far)
    assert far > 1e-3  # features are not degenerate: the weights were loaded and used
