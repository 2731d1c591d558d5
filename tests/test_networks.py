"""LIR networks: shapes, ablation variants, gradient reachability (DDP without unused parameters),
Restorer sharing and state-dict export."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import TINY, one_thread_fixture

from ldct_invrep.losses.objective import LIRLossWeights, LIRObjective
from ldct_invrep.networks import (
    PRESETS,
    LIRConfig,
    LIRDiscriminators,
    LIRNet,
    MultiScaleDiscriminator,
    NoiseEncoder,
    Pad2d,
    RepresentationDiscriminator,
    Restorer,
    get_config,
    restorer_state_dict,
)

_one_thread = one_thread_fixture()


def _batch(config: LIRConfig, size: int = 32, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, config.in_channels, size, size)
    return torch.rand(shape, generator=g) * 2 - 1, torch.rand(shape, generator=g) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(67, 53), (64, 64), (5, 3), (1, 1), (2, 9)])
def test_restorer_any_size_and_channels(channels, size):
    config = LIRConfig(in_channels=channels, base_channels=4, n_res=1)
    restorer = Restorer.from_config(config).eval()
    with torch.no_grad():
        out = restorer(torch.rand(2, channels, *size) * 2 - 1)
    assert out.shape == (2, channels, *size)
    assert out.abs().max() <= 1.0  # tanh output, network range
    assert torch.isfinite(out).all()


def test_lir_forward_shapes():
    config = TINY
    net = LIRNet(config).train()
    x, y = _batch(config, size=32)
    out = net(x, y)
    code = (2, config.code_channels, 8, 8)
    noise = (2, 4, 8, 8)
    for name in ("x_rec", "y_rec", "x2y", "y2x", "x_cyc", "y_cyc"):
        assert getattr(out, name).shape == x.shape, name
    for name in ("z_x", "z_y", "z_x2y", "z_y2x"):
        assert getattr(out, name).shape == code, name
    assert out.z_n.shape == noise and out.z_n_y2x.shape == noise
    assert out.x is x and out.y is y
    assert net.generator_x.in_channels == config.code_channels + 4
    assert net.generator_y.in_channels == config.code_channels


def test_noise_code_sampled_in_training_only():
    net = LIRNet(TINY)
    x, y = _batch(TINY)
    net.train()
    a, b = net(x, y), net(x, y)
    # the noise code is re-sampled (mu + eps), the clean path G_Y(E_X(x)) is deterministic
    assert not torch.allclose(a.x_rec, b.x_rec)
    assert torch.equal(a.x2y, b.x2y)
    torch.manual_seed(3)
    c = net(x, y)
    torch.manual_seed(3)
    d = net(x, y)
    assert torch.equal(c.x_rec, d.x_rec) and torch.equal(c.x_cyc, d.x_cyc)
    net.eval()
    with torch.no_grad():
        e, f = net(x, y), net(x, y)
    assert torch.equal(e.x_rec, f.x_rec)


def test_content_code_noise_switch():
    config = get_config("paper", base_channels=4, n_res=1, content_code_noise=True)
    net = LIRNet(config).train()
    x, y = _batch(config)
    assert not torch.allclose(net(x, y).x2y, net(x, y).x2y)


def test_no_noise_encoder_variant():
    config = get_config("paper", base_channels=8, n_res=1, use_noise_encoder=False)
    net = LIRNet(config)
    assert net.noise_encoder is None
    assert not any(k.startswith("noise_encoder.") for k in net.state_dict())
    assert net.generator_x.in_channels == config.code_channels
    out = net(*_batch(config))
    assert out.z_n is None and out.z_n_y2x is None
    assert out.y2x.shape == out.x.shape and out.x_cyc.shape == out.x.shape


def test_no_representation_discriminator_variant():
    config = get_config("paper", base_channels=8, dis_channels=8, use_representation_discriminator=False)
    disc = LIRDiscriminators(config)
    assert disc.representation_discriminator is None
    assert not any(k.startswith("representation_discriminator.") for k in disc.state_dict())
    x = torch.rand(2, 1, 64, 64)
    d_x, d_y, d_r = disc(x, x, torch.rand(2, config.code_channels, 16, 16))
    assert d_r is None and len(d_x) == 3 and len(d_y) == 3


def _generator_side_loss(out) -> torch.Tensor:
    tensors = [v for k, v in vars(out).items() if k not in ("x", "y") and v is not None]
    return sum(t.square().mean() for t in tensors)


@pytest.mark.parametrize("use_noise_encoder", [True, False])
def test_every_generator_parameter_gets_a_gradient(use_noise_encoder):
    config = get_config("paper", base_channels=8, n_res=1, noise_channels=4, use_noise_encoder=use_noise_encoder)
    net = LIRNet(config).train()
    _generator_side_loss(net(*_batch(config))).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("use_rd", [True, False])
def test_every_discriminator_parameter_gets_a_gradient(use_rd):
    config = get_config("paper", base_channels=8, dis_channels=8, dis_scales=2, use_representation_discriminator=use_rd)
    disc = LIRDiscriminators(config)
    x, y = _batch(config, size=32)
    d_x, d_y, d_r = disc(x, y, torch.rand(2, config.code_channels, 8, 8))
    loss = sum(o.square().mean() for o in d_x + d_y) + (d_r.square().mean() if d_r is not None else 0)
    loss.backward()
    missing = [n for n, p in disc.named_parameters() if p.grad is None]
    assert not missing, missing


def test_objective_reaches_every_parameter():
    """With the real objective (eq. 14 without VGG) every trainable parameter of both players gets a
    gradient, so DistributedDataParallel needs no find_unused_parameters."""
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    config = TINY
    net, disc = LIRNet(config).train(), LIRDiscriminators(config)
    out = net(*_batch(config))
    g_loss, _ = objective.generator_loss(out, disc)
    g_loss.backward()
    assert not [n for n, p in net.named_parameters() if p.grad is None]
    disc.zero_grad(set_to_none=True)
    d_loss, _ = objective.discriminator_loss(out, disc)
    d_loss.backward()
    assert not [n for n, p in disc.named_parameters() if p.grad is None]


def test_restorer_shares_modules_and_matches_x2y():
    config = get_config("paper", base_channels=8, n_res=1, content_code_noise=True)
    net = LIRNet(config).eval()
    restorer = net.restorer()
    assert restorer.content_encoder is net.content_encoder_x and restorer.generator is net.generator_y
    x, y = _batch(config, size=32)
    with torch.no_grad():
        expected = net(x, y).x2y
        assert torch.equal(restorer(x), expected)
        # sharing: a change to the LIRNet weights shows in the restorer
        net.generator_y.model[-1].conv.bias.add_(0.1)
        assert not torch.equal(restorer(x), expected)


def test_restorer_from_config_loads_state_subset():
    config = get_config("paper", base_channels=8, n_res=1, noise_channels=4)
    net = LIRNet(config).eval()
    state = restorer_state_dict(net.state_dict())
    assert state.keys() == net.restorer_state_dict().keys()
    assert all(k.startswith(("content_encoder.", "generator.")) for k in state)
    restorer = Restorer.from_config(config).eval()
    restorer.load_state_dict(state, strict=True)  # exactly the subset: no missing, no unexpected keys
    x = torch.rand(1, 1, 67, 53) * 2 - 1
    with torch.no_grad():
        assert torch.equal(restorer(x), net.restorer()(x))
        assert not torch.equal(Restorer.from_config(config).eval()(x), restorer(x))


def test_multiscale_discriminator_scales_and_min_size():
    d = MultiScaleDiscriminator(in_channels=1, base_channels=8, n_layers=4, num_scales=3)
    outs = d(torch.rand(2, 1, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 1, 4, 4), (2, 1, 2, 2), (2, 1, 1, 1)]
    assert d.min_size == 64
    with pytest.raises(ValueError, match="at least 64x64"):
        d(torch.rand(2, 1, 32, 32))
    d3 = MultiScaleDiscriminator(in_channels=3, base_channels=8, n_layers=3, num_scales=2)
    assert [tuple(o.shape) for o in d3(torch.rand(1, 3, 48, 40))] == [(1, 1, 6, 5), (1, 1, 3, 2)]


def test_high_pass_discriminator_sees_amplified_detail():
    torch.manual_seed(0)
    plain = MultiScaleDiscriminator(in_channels=1, base_channels=8, n_layers=4, num_scales=3)
    hp = MultiScaleDiscriminator(in_channels=1, base_channels=8, n_layers=4, num_scales=3, high_pass_gain=20.0)
    assert plain.scales[0][0].conv.in_channels == 1 and hp.scales[0][0].conv.in_channels == 2
    flat = torch.full((1, 1, 64, 64), -0.5)
    with torch.no_grad():
        # a constant image has no detail: the high-pass channel is exactly zero (replicate-padded mean)
        seen = {}
        hp.scales[0].register_forward_hook(lambda m, inp, out: seen.setdefault("input", inp[0]))
        hp(flat)
        assert seen["input"].shape == (1, 2, 64, 64)
        assert torch.equal(seen["input"][:, 0], flat[:, 0]) and seen["input"][:, 1].abs().max() == 0
        seen.clear()
        noisy = flat + 0.01 * torch.randn_like(flat)
        hp(noisy)
        detail = seen["input"][:, 1]
        assert 0.1 < float(detail.std()) < 0.25  # 20 x the high-pass part of 0.01 white noise (~0.94 of it)
    config = get_config("lite", base_channels=4, n_res=1, noise_channels=4, dis_high_pass_gain=8.0)
    disc = LIRDiscriminators(config)
    assert disc.discriminator_x.high_pass_gain == disc.discriminator_y.high_pass_gain == 8.0


@pytest.mark.parametrize("size", [(16, 16), (8, 8), (3, 5), (1, 1)])
def test_representation_discriminator_small_codes(size):
    d = RepresentationDiscriminator(in_channels=16, channels=16, n_layers=4)
    out = d(torch.rand(3, 16, *size))
    assert out.shape == (3, 1)


def test_noise_encoder_spatial_code():
    e = NoiseEncoder(in_channels=1, base_channels=4, n_downsample=2, out_channels=6, norm="batch")
    assert e(torch.rand(2, 1, 64, 48)).shape == (2, 6, 16, 12)


def test_initialisation():
    config = get_config("paper", base_channels=16, n_res=1, dis_channels=16)
    net, disc = LIRNet(config), LIRDiscriminators(config)
    conv = net.content_encoder_x.model[0].conv  # 7x7, 1 -> 16: fan_in 49
    assert conv.bias.abs().max() == 0
    assert abs(net.generator_y.model[0].body[0].conv.weight.std().item() - math.sqrt(2 / (9 * 64))) < 0.01
    for name, p in disc.named_parameters():
        if name.endswith("bias"):
            assert p.abs().max() == 0, name
        elif p.numel() > 1000:
            assert abs(p.std().item() - 0.02) < 0.003, name


def test_reflect_pad_falls_back_to_replicate():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert torch.equal(Pad2d(3, "reflect")(x), torch.nn.functional.pad(x, (3,) * 4, mode="replicate"))
    assert torch.equal(Pad2d(1, "reflect")(x), torch.nn.functional.pad(x, (1,) * 4, mode="reflect"))
    with pytest.raises(ValueError):
        Pad2d(1, "circular")


def test_presets_and_overrides():
    assert set(PRESETS) >= {"paper", "lite"}
    paper = get_config("paper")
    assert (paper.base_channels, paper.n_res, paper.norm) == (64, 4, "instance")
    assert (paper.dis_channels, paper.dis_layers, paper.dis_scales) == (64, 4, 3)
    assert paper.code_channels == 256 and paper.noise_code_channels == 256
    assert get_config("lite", n_res=1).n_res == 1
    assert get_config("lite").code_channels < paper.code_channels
    with pytest.raises(ValueError):
        get_config("huge")
    with pytest.raises(ValueError):
        LIRConfig(norm="group")


def test_residual_generators_start_as_identity_and_restorer_matches_x2y():
    config = get_config("lite", base_channels=4, n_res=1, noise_channels=4)
    assert config.residual and not PRESETS["paper"].residual
    net = LIRNet(config).eval()
    x, y = _batch(config, size=32)
    with torch.no_grad():
        out = net(x, y)
        # zero-initialised output layers: every translation and reconstruction is its source image
        for name, source in (("x2y", x), ("y2x", y), ("x_rec", x), ("y_rec", y), ("x_cyc", x), ("y_cyc", y)):
            assert torch.allclose(getattr(out, name), source), name
        net.generator_y.model[-1].conv.bias.add_(0.1)
        out = net(x, y)
        assert torch.allclose(out.x2y, x + math.tanh(0.1), atol=1e-6)  # source + tanh(correction)
        restorer = net.restorer()
        assert restorer.residual and torch.equal(restorer(x), out.x2y.clamp(-1, 1))
        assert not torch.equal(out.x2y.clamp(-1, 1), out.x2y)  # the batch does reach past the range
        rebuilt = Restorer.from_config(config).eval()
        rebuilt.load_state_dict(net.restorer_state_dict())
        assert torch.equal(rebuilt(x[..., :29, :27]), restorer(x[..., :29, :27]))  # padded sizes too
        scripted = torch.jit.script(rebuilt)
        assert torch.allclose(scripted(x), restorer(x))
