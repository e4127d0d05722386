"""DeLiGAN's learnable mixture-of-Gaussians latent (gan/networks/mixture_prior.py) and its sigma
regulariser (gan/tricks/mixture_prior.py): the map draws the mixture from z ~ N(0, I), is a pure
function of z, trains with G, survives checkpoints, gan.generate and export, and leaves every
generator exactly as it was when off. Synthetic data, tiny nets."""

from __future__ import annotations

import math

import pytest
import torch

from gan.core.losses import BCE
from gan.io.config import build
from gan.io.usage import UsageError
from gan.networks import dcgan, mlp, resnet, sagan
from gan.networks.mixture_prior import MixturePrior
from gan.runs.wiring import fit
from gan.sampling.posthoc import Truncation
from gan.sampling.sampler import Sampler
from gan.tricks.mixture_prior import SigmaRegulariser
from tests.conftest import FAST, REPO, TINY_DCGAN, compose_train, export_and_run, tiny_module

GENERATORS = {
    "mlp": lambda **kw: mlp.Generator((1, 28, 28), latent_dim=8, hidden=(16,), **kw),
    "dcgan": lambda **kw: dcgan.Generator((1, 28, 28), latent_dim=8, width=4, **kw),
    "resnet": lambda **kw: resnet.Generator((1, 28, 28), latent_dim=8, width=8, **kw),
    "sagan": lambda **kw: sagan.Generator((1, 28, 28), latent_dim=8, width=8, **kw),
}
PRIOR = [*TINY_DCGAN, "+variant=mog", "model.generator.prior_components=4"]


def normal(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def hand_set(components: int = 5, dim: int = 4) -> MixturePrior:
    """Components far apart (mu_c = 20 c + j in dimension j), each dimension its own sigma."""
    prior = MixturePrior(dim, components)
    with torch.no_grad():
        prior.mu.copy_(20.0 * torch.arange(components)[:, None] + torch.arange(dim)[None, :])
        prior.sigma.copy_(0.5 + 0.25 * torch.arange(components * dim).reshape(components, dim))
    return prior


# ---- the map -----------------------------------------------------------------------------------

def test_standard_normal_z_becomes_the_uniform_mixture():
    prior, n = hand_set(), 100_000
    with torch.no_grad():
        out = prior(normal(n, 4))
    # the components are 20 apart and sigma <= 5.25: the nearest mean is the component drawn
    c = torch.cdist(out, prior.mu).argmin(1)
    assert torch.equal(c, prior.split(normal(n, 4))[0])
    freq = torch.bincount(c, minlength=5).float() / n
    assert (freq - 0.2).abs().max() < 0.01, freq  # uniform: 6 standard errors
    for k in range(5):
        x = out[c == k]
        mu, sigma = prior.mu[k].detach(), prior.sigma[k].detach()
        assert torch.allclose(x.mean(0), mu, atol=0.05 * sigma.max().item()), k
        assert torch.allclose(x.std(0), sigma, rtol=0.03), k
        # within a component the dimensions stay independent (the rotated pair included)
        corr = torch.corrcoef(((x - mu) / sigma).T)
        assert (corr - torch.eye(4)).abs().max() < 0.03, k


def test_the_noise_inside_a_component_is_standard_normal_and_independent_of_it():
    prior = MixturePrior(3, 50)
    c, eps = prior.split(normal(200_000, 3))
    phi = lambda q: 0.5 * (1 + math.erf(q / math.sqrt(2)))  # noqa: E731
    for k in (0, 17, 49):  # first, middle, last arc
        e = eps[c == k]
        for j in range(3):
            for q in (-1.5, 0.0, 0.7):  # the normal CDF at three points, per coordinate
                assert abs((e[:, j] < q).float().mean().item() - phi(q)) < 0.03, (k, j, q)


def test_same_z_same_sample_row_by_row():
    prior = MixturePrior(8, 50)
    z = normal(32, 8)
    with torch.no_grad():
        out = prior(z)
        assert torch.equal(out, prior(z))
        assert torch.equal(out[5:6], prior(z[5:6]))  # a row depends on its own z alone
    g = GENERATORS["dcgan"](prior_components=50).eval()
    with torch.no_grad():
        assert torch.equal(g(z), g(z))
        assert torch.allclose(g(z)[:3], g(z[:3]), atol=1e-6)


def test_truncation_narrows_each_component_and_keeps_the_choice():
    """psi scales z; through the mixture it scales only the noise inside the component chosen,
    so the component frequencies stay uniform (through Phi(z_0) they would not)."""
    prior, psi = hand_set(), 0.5
    z = normal(50_000, 4)
    c, eps = prior.split(z)
    zt = Truncation(psi).latent(z)
    ct, epst = prior.split(zt)
    assert torch.equal(ct, c)
    assert torch.allclose(epst, psi * eps, atol=1e-5)
    with torch.no_grad():
        expected = prior.mu[c] + psi * prior.sigma[c] * eps
        assert torch.allclose(prior(zt), expected, atol=1e-4)
    freq = torch.bincount(ct, minlength=5).float() / len(z)
    assert (freq - 0.2).abs().max() < 0.015
    # the inverse-CDF form would pick from Phi(psi z_0) N: the middle component 2x too often
    naive = (0.5 * (1 + torch.erf(zt[:, 0] / math.sqrt(2))) * 5).floor().clamp(0, 4).long()
    assert torch.bincount(naive, minlength=5)[2] / len(z) > 0.3


# ---- the generators ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", GENERATORS)
def test_off_is_the_generator_as_before_and_on_adds_only_mu_and_sigma(arch):
    torch.manual_seed(0)
    before = GENERATORS[arch]().state_dict()
    torch.manual_seed(0)
    off = GENERATORS[arch](prior_components=0).state_dict()
    torch.manual_seed(0)
    on = GENERATORS[arch](prior_components=3, prior_sigma=0.2).state_dict()
    assert list(off) == list(before) and all(torch.equal(off[k], before[k]) for k in before)
    assert set(on) - set(before) == {"prior.mu", "prior.sigma"} and set(before) <= set(on)
    # built last, so the rest of G starts from the same weights: a comparison isolates the prior
    assert all(torch.equal(on[k], before[k]) for k in before)
    assert on["prior.mu"].shape == (3, 8) and on["prior.mu"].abs().max() <= 1
    assert torch.equal(on["prior.sigma"], torch.full((3, 8), 0.2))


def test_old_checkpoints_still_load_and_generate():
    sampler = Sampler(REPO / "tests" / "fixtures" / "before_layers" / "run" / "checkpoints"
                      / "last.ckpt")  # written before the option existed
    assert not any(k.startswith("prior.") for k in sampler.generator.state_dict())
    assert sampler(4).shape == (4, 1, 28, 28)


def test_g_loss_reaches_mu_and_sigma_and_g_optimizer_trains_them(fast_cfg):
    module = tiny_module(fast_cfg(*PRIOR))
    prior = module.generator.prior
    assert isinstance(prior, MixturePrior) and prior.components == 4
    z = normal(64, 8)
    BCE().g_loss(module.discriminator(module.generator(z))).backward()
    used = prior.split(z)[0].unique()
    for p in (prior.mu, prior.sigma):
        assert p.grad[used].abs().sum(1).min() > 0  # every component drawn gets a gradient
    opt_g, opt_d = module.configure_optimizers()
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    assert {id(prior.mu), id(prior.sigma)} <= ids(opt_g)
    assert not {id(prior.mu), id(prior.sigma)} & ids(opt_d)


# ---- the regulariser --------------------------------------------------------------------------

def test_the_regulariser_is_deligans_formula_and_pulls_sigma_to_one():
    sigma = torch.tensor([[0.2, 1.0], [1.5, 0.0]], requires_grad=True)
    trick = SigmaRegulariser(weight=1 / 3)
    value = trick.penalty(sigma)
    # lambda * mean over components and dimensions of (1 - sigma)^2
    assert value.item() == pytest.approx((0.64 + 0.0 + 0.25 + 1.0) / 4 / 3)
    value.backward()
    # descent moves sigma towards 1: up below it, down above it, nothing at 1
    assert sigma.grad[0, 0] < 0 and sigma.grad[1, 1] < 0 and sigma.grad[1, 0] > 0
    assert sigma.grad[0, 1] == 0


def test_the_trick_adds_the_term_for_gs_own_sigma(fast_cfg):
    module = tiny_module(fast_cfg(*PRIOR, "tricks.mixture_prior.weight=2.0"))
    trick = next(t for t in module.tricks if isinstance(t, SigmaRegulariser))
    with torch.no_grad():
        module.generator.prior.sigma.fill_(0.5)
    term = trick.g_penalty(None, None, step=0)
    assert term.item() == pytest.approx(2.0 * 0.25)
    term.backward()
    assert module.generator.prior.sigma.grad is not None


def test_the_trick_refuses_a_generator_without_the_prior(fast_cfg):
    cfg = fast_cfg(*TINY_DCGAN, "tricks=[ema,mixture_prior]")
    with pytest.raises(UsageError, match=r"prior_components=50") as err:
        fit(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, key", [
    (dict(latent_dim=1, components=4), "model.latent_dim=1"),
    (dict(latent_dim=8, components=-1), "prior_components=-1"),
    (dict(latent_dim=8, components=4, sigma=0.0), "prior_sigma=0.0"),
])
def test_bad_settings_are_refused_in_one_line(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MixturePrior(**kwargs)
    with pytest.raises(ValueError, match="weight=-1"):
        SigmaRegulariser(weight=-1)


# ---- a run, its checkpoint, gan.generate and export -------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mog_run")
    cfg = compose_train([*FAST, *PRIOR], run_dir)
    torch.manual_seed(cfg.seed)
    initial = build(cfg.model.generator, img_shape=(1, 28, 28), num_classes=10).prior
    _, module = fit(cfg)
    return run_dir, module, initial


def test_a_run_trains_the_prior_and_gan_generate_rebuilds_it(trained):
    run_dir, module, initial = trained
    prior = module.generator.prior
    assert module.g_step == 2
    assert not torch.equal(prior.mu, initial.mu) and not torch.equal(prior.sigma, initial.sigma)
    sampler = Sampler(run_dir / "checkpoints" / "last.ckpt")
    assert sampler.kind == "ema" and isinstance(sampler.generator.prior, MixturePrior)
    ema = module.trick_state['ema'].prior
    assert torch.equal(sampler.generator.prior.mu, ema.mu.cpu())
    assert torch.equal(sampler.generator.prior.sigma, ema.sigma.cpu())
    # gan.generate's draw with seed 0 is the trained module's EMA G on the same seeded z
    images = sampler(8, seed=0)
    torch.testing.assert_close(images, module.sample(normal(8, 8, seed=0)))
    assert images.std() > 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_generator_with_the_prior_exports(trained, tmp_path, fmt):
    got, expected = export_and_run(trained[0] / "checkpoints" / "last.ckpt", tmp_path, fmt)
    assert (got - expected).abs().max().item() <= 1e-4
