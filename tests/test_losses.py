"""Losses of LIR (eq. 7-14): hand computations on small tensors, the VGG-19 loader, the objective."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch import nn

from ldct_invrep.errors import InputError
from ldct_invrep.losses import (
    DISCRIMINATOR_TERMS,
    GENERATOR_TERMS,
    LAYER_INDEX,
    VGG19_WEIGHTS_ENV,
    VGG19_WEIGHTS_FILENAME,
    BackgroundConsistencyLoss,
    CrossCycleLoss,
    DomainAdversarialLoss,
    LIRLossWeights,
    LIRObjective,
    NoiseCodeKLLoss,
    RepresentationAdversarialLoss,
    SelfReconstructionLoss,
    SemanticConsistencyLoss,
    VGG19Features,
)
from ldct_invrep.losses import vgg as vgg_module
from ldct_invrep.networks import lir
from ldct_invrep.networks.lir import LIRForward

LOG2 = math.log(2.0)
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


# --------------------------------------------------------------------------- L1 losses (eq. 7, 8; L^Rec)
def _pairs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    x_hat = torch.tensor([[[[1.0, 1.0], [0.0, 3.0]]]])  # |diff| = 1, 0, 2, 0 -> mean 0.75, sum 3
    y = torch.tensor([[[[-1.0, 0.5], [0.0, 0.0]]]])
    y_hat = torch.tensor([[[[-1.0, 0.0], [0.5, 1.0]]]])  # |diff| = 0, 0.5, 0.5, 1 -> mean 0.5, sum 2
    return x, x_hat, y, y_hat


@pytest.mark.parametrize("loss_cls", [CrossCycleLoss, SelfReconstructionLoss])
def test_l1_losses_match_hand_computation(loss_cls: type) -> None:
    x, x_hat, y, y_hat = _pairs()
    assert loss_cls()(x, x_hat, y, y_hat).item() == pytest.approx(0.75 + 0.5)
    assert loss_cls()(x, x_hat).item() == pytest.approx(0.75)
    assert loss_cls(reduction="sum")(x, x_hat, y, y_hat).item() == pytest.approx(3.0 + 2.0)
    none = loss_cls(reduction="none")(x, x_hat, y, y_hat)
    assert torch.allclose(none, torch.tensor([[[[1.0, 0.5], [2.5, 1.0]]]]))
    with pytest.raises(ValueError):
        loss_cls(reduction="max")


def test_l1_loss_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        CrossCycleLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3))


# --------------------------------------------------------------------------- background consistency (eq. 10)
def test_background_kernels_sum_to_one_and_are_near_box() -> None:
    loss = BackgroundConsistencyLoss()
    assert loss.kernel_sizes == (5, 9, 15) and loss.weights == (0.25, 0.5, 1.0)
    for scale, size in enumerate(loss.kernel_sizes):
        kernel = torch.outer(loss.kernel_1d(scale), loss.kernel_1d(scale))  # the separable blur's 2-D kernel
        assert kernel.shape == (size, size)
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert torch.allclose(kernel, kernel.flip(0)) and torch.allclose(kernel, kernel.T)
        # sigma = 25 at these sizes: within 10 % of a box filter (15x15: exp(2 * 7**2 / (2 * 25**2)) = 1.08)
        assert (kernel.max() / kernel.min()).item() < 1.1
    narrow = BackgroundConsistencyLoss(kernel_sizes=(5,), weights=(1.0,), sigma=1.0).kernel_1d(0)
    assert narrow[2] > narrow[1] > narrow[0]


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_background_blur_of_constant_is_constant(channels: int) -> None:
    loss = BackgroundConsistencyLoss()
    values = torch.arange(channels, dtype=torch.float32).view(1, channels, 1, 1) - 0.5
    image = values.expand(2, channels, 20, 24).contiguous()
    for scale in range(3):
        blurred = loss.blur(image, scale)
        assert blurred.shape == image.shape
        assert torch.allclose(blurred, image, atol=1e-6)


def test_background_blur_uses_reflect_padding() -> None:
    loss = BackgroundConsistencyLoss(kernel_sizes=(3,), weights=(1.0,), sigma=1e6)  # 3x3 mean filter
    image = torch.zeros(1, 1, 3, 3)
    image[0, 0, 1, 1] = 9.0
    blurred = loss.blur(image, 0)
    # reflect: the corner's 3x3 window sees the centre 4 times (zero padding or replicate would give 1)
    assert blurred[0, 0, 0, 0].item() == pytest.approx(4.0, rel=1e-4)
    assert blurred[0, 0, 1, 1].item() == pytest.approx(1.0, rel=1e-4)
    assert blurred[0, 0, 0, 1].item() == pytest.approx(2.0, rel=1e-4)


def test_background_small_images_fall_back_to_replicate() -> None:
    loss = BackgroundConsistencyLoss()  # pad 7 for the 15 kernel: reflect impossible on 6x6
    image = torch.full((1, 1, 6, 6), 0.3)
    assert torch.allclose(loss.blur(image, 2), image, atol=1e-6)
    assert torch.isfinite(loss(torch.rand(1, 1, 6, 6), torch.rand(1, 1, 6, 6)))


def test_background_loss_value_for_constant_shift() -> None:
    loss = BackgroundConsistencyLoss()
    x = torch.rand(2, 1, 32, 32)
    # the blurs are linear and preserve constants: each level's L1 is exactly the shift
    value = loss(x, x + 0.2)
    assert value.item() == pytest.approx(0.2 * (0.25 + 0.5 + 1.0), rel=1e-4)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    none = BackgroundConsistencyLoss(reduction="none")(x, x + 0.2)
    assert none.shape == x.shape
    assert torch.allclose(none, torch.full_like(x, 0.35), atol=1e-5)


def test_background_buffers_move_and_are_not_persistent() -> None:
    loss = BackgroundConsistencyLoss()
    assert len(dict(loss.named_buffers())) == 3
    assert loss.state_dict() == {}
    loss = loss.to(torch.float64)
    assert loss.kernel_1d(0).dtype == torch.float64
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    loss(x, torch.zeros_like(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- adversarial (eq. 9, 12, 13)
def _two_scale() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    real = [torch.tensor([[0.5, 1.5]]), torch.tensor([[2.0]])]
    fake = [torch.tensor([[0.0, 1.0]]), torch.tensor([[-1.0]])]
    return real, fake


def test_domain_adversarial_lsgan_sums_over_scales() -> None:
    real, fake = _two_scale()
    loss = DomainAdversarialLoss()
    # D: mean((real-1)^2) = 0.25 and 1.0; mean(fake^2) = 0.5 and 1.0
    assert loss.discriminator(real, fake).item() == pytest.approx(0.25 + 1.0 + 0.5 + 1.0)
    # G: mean((fake-1)^2) = 0.5 and 4.0 (summed, not averaged as monai's PatchAdversarialLoss would)
    assert loss.generator(fake).item() == pytest.approx(0.5 + 4.0)
    assert loss(fake, True).item() == pytest.approx(4.5)
    assert loss(fake, False).item() == pytest.approx(1.5)
    assert DomainAdversarialLoss(reduction="sum").generator(fake).item() == pytest.approx(1.0 + 4.0)
    # raw least squares: negative logits are not squashed by an activation
    assert loss.generator(torch.tensor([[-3.0]])).item() == pytest.approx(16.0)


def test_domain_adversarial_bce_values() -> None:
    loss = DomainAdversarialLoss(criterion="bce")
    zeros = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]
    assert loss.discriminator(zeros, zeros).item() == pytest.approx(4 * LOG2, rel=1e-6)
    assert loss.generator(zeros).item() == pytest.approx(2 * LOG2, rel=1e-6)
    logit = torch.tensor([[2.0]])
    assert loss.generator(logit).item() == pytest.approx(-math.log(torch.sigmoid(logit).item()), rel=1e-6)


def test_adversarial_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        DomainAdversarialLoss(criterion="hinge")
    with pytest.raises(ValueError):
        RepresentationAdversarialLoss(reduction="none")
    with pytest.raises(ValueError):
        DomainAdversarialLoss()([], True)


def test_representation_adversarial_confusion_and_discriminator() -> None:
    bce = RepresentationAdversarialLoss(criterion="bce")
    half = torch.zeros(4, 1)  # logit 0 -> D_R = 0.5
    assert bce.generator(half).item() == pytest.approx(LOG2, rel=1e-6)
    assert bce.generator([half, half]).item() == pytest.approx(2 * LOG2, rel=1e-6)
    # the BCE confusion is -(1/2 log D + 1/2 log(1 - D)), the negative of eq. 9's summand
    d = torch.sigmoid(torch.tensor(1.3)).item()
    assert bce.generator(torch.full((1, 1), 1.3)).item() == pytest.approx(-(0.5 * math.log(d) + 0.5 * math.log(1 - d)))
    lsgan = RepresentationAdversarialLoss()
    assert lsgan.generator([torch.tensor([[0.5]]), torch.tensor([[1.5]])]).item() == pytest.approx(1.0)
    # D_R side: clean code real (1), noisy code fake (0)
    assert lsgan.discriminator(torch.ones(2, 1), torch.zeros(2, 1)).item() == pytest.approx(0.0)
    assert lsgan.discriminator(torch.zeros(2, 1), torch.ones(2, 1)).item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- KL
def test_noise_code_kl() -> None:
    mu = torch.tensor([1.0, 2.0])
    assert NoiseCodeKLLoss()(mu).item() == pytest.approx(0.5 * (1 + 4) / 2)
    assert NoiseCodeKLLoss(reduction="sum")(mu).item() == pytest.approx(2.5)
    assert torch.allclose(NoiseCodeKLLoss(reduction="none")(mu), torch.tensor([0.5, 2.0]))
    assert NoiseCodeKLLoss(reduction=LossReduction.SUM)(mu).item() == pytest.approx(2.5)  # MONAI's enum works too


# --------------------------------------------------------------------------- VGG-19 loader
def _fake_torchvision_state_dict(layer: str = "conv2_2") -> dict[str, torch.Tensor]:
    """torchvision-format keys with random weights up to ``layer``, plus deeper/classifier keys that must be
    dropped (given wrong shapes on purpose, so loading them would fail)."""
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) * 0.1 for k, v in VGG19Features(layer).state_dict().items()}
    state["features.34.weight"] = torch.zeros(1)
    state["classifier.0.weight"] = torch.zeros(3, 3)
    state["classifier.6.bias"] = torch.zeros(3)
    return state


@pytest.fixture
def no_default_weights(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(VGG19_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))


def test_vgg_layout_matches_torchvision() -> None:
    full = VGG19Features(layer=None)
    expected = {f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")}
    assert set(full.state_dict()) == expected
    assert len(full.features) == 37
    assert [i for i, m in enumerate(full.features) if isinstance(m, nn.Conv2d)] == list(TORCHVISION_CONV_INDICES)
    assert [i for i, m in enumerate(full.features) if isinstance(m, nn.MaxPool2d)] == [4, 9, 18, 27, 36]
    assert LAYER_INDEX["conv5_1"] == 28 and LAYER_INDEX["conv4_1"] == 19


def test_vgg_truncation_at_conv5_1() -> None:
    net = VGG19Features("conv5_1")
    assert len(net.features) == 29
    last = net.features[28]
    assert isinstance(last, nn.Conv2d) and (last.in_channels, last.out_channels) == (512, 512)
    assert len(VGG19Features("conv4_1").features) == 20
    with pytest.raises(ValueError, match="unknown VGG-19 layer"):
        VGG19Features("conv6_1")


def test_vgg_loads_full_and_features_only_state_dicts(tmp_path) -> None:
    state = _fake_torchvision_state_dict("conv2_2")
    full_path = tmp_path / VGG19_WEIGHTS_FILENAME
    torch.save(state, full_path)
    net = VGG19Features.from_pretrained("conv2_2", full_path)
    assert torch.equal(net.features[7].weight, state["features.7.weight"])
    assert not any(k.startswith("classifier") for k in net.state_dict())

    features_only = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    features_path = tmp_path / "features_only.pth"
    torch.save(features_only, features_path)
    net2 = VGG19Features.from_pretrained("conv1_1", features_path)
    assert torch.equal(net2.features[0].bias, state["features.0.bias"])


def test_vgg_resolves_env_and_hub_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _fake_torchvision_state_dict("conv1_1")
    env_file = tmp_path / "elsewhere.pth"
    torch.save(state, env_file)
    monkeypatch.setenv(VGG19_WEIGHTS_ENV, str(env_file))
    assert torch.equal(VGG19Features.from_pretrained("conv1_1").features[0].weight, state["features.0.weight"])

    monkeypatch.delenv(VGG19_WEIGHTS_ENV)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(state, hub / "checkpoints" / VGG19_WEIGHTS_FILENAME)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert torch.equal(VGG19Features.from_pretrained("conv1_1").features[0].bias, state["features.0.bias"])


def test_vgg_missing_file_message(no_default_weights, tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        VGG19Features.from_pretrained("conv5_1")
    message = str(info.value)
    assert VGG19_WEIGHTS_FILENAME in message
    assert str(tmp_path / "empty_hub" / "checkpoints" / VGG19_WEIGHTS_FILENAME) in message
    assert "semantic weight 0" in message and VGG19_WEIGHTS_ENV in message
    assert "\n" not in message
    assert isinstance(info.value, InputError)
    explicit = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGG19Features.from_pretrained("conv5_1", explicit)


def test_vgg_rejects_wrong_state_dict(tmp_path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(InputError, match="wrong.pth: not a torchvision VGG-19 state dict"):
        VGG19Features.from_pretrained("conv1_1", path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: cannot read"):
        VGG19Features.from_pretrained("conv1_1", garbage)


def test_vgg_preprocessing_grey_and_imagenet_normalisation() -> None:
    net = VGG19Features("conv1_1")
    grey = torch.rand(2, 1, 8, 8) * 2 - 1
    pre = net.preprocess(grey)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(pre, (((grey + 1) / 2).repeat(1, 3, 1, 1) - mean) / std, atol=1e-6)
    assert torch.allclose(net(grey), net(grey.repeat(1, 3, 1, 1)), atol=1e-6)
    with pytest.raises(ValueError):
        net(torch.zeros(1, 2, 8, 8))


# --------------------------------------------------------------------------- semantic consistency (eq. 11)
@pytest.fixture
def fake_vgg_file(tmp_path):
    path = tmp_path / VGG19_WEIGHTS_FILENAME
    torch.save(_fake_torchvision_state_dict("conv1_2"), path)
    return path


def test_semantic_loss_matches_hand_features(fake_vgg_file) -> None:
    state = torch.load(fake_vgg_file, weights_only=True)
    loss = SemanticConsistencyLoss("conv1_1", fake_vgg_file)
    a, b = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8) * 2 - 1

    def phi(img: torch.Tensor) -> torch.Tensor:
        rgb = ((img + 1) / 2).repeat(1, 3, 1, 1)
        rgb = (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]
        ).view(1, 3, 1, 1)
        return F.conv2d(rgb, state["features.0.weight"], state["features.0.bias"], padding=1)

    expected = ((phi(a) - phi(b)) ** 2).mean()
    assert loss(a, b).item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss(a, a).item() == pytest.approx(0.0, abs=1e-10)
    inorm = SemanticConsistencyLoss("conv1_1", fake_vgg_file, feature_norm="instance")
    expected_in = ((F.instance_norm(phi(a)) - F.instance_norm(phi(b))) ** 2).mean()
    assert inorm(a, b).item() == pytest.approx(expected_in.item(), rel=1e-5)
    with pytest.raises(ValueError):
        SemanticConsistencyLoss("conv1_1", fake_vgg_file, feature_norm="batch")


def test_semantic_loss_is_frozen(fake_vgg_file) -> None:
    loss = SemanticConsistencyLoss("conv1_2", fake_vgg_file).train()
    assert not loss.vgg.training
    assert all(not p.requires_grad for p in loss.parameters())
    a = torch.rand(1, 1, 8, 8, requires_grad=True)
    loss(a, torch.zeros(1, 1, 8, 8)).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


# --------------------------------------------------------------------------- objective (eq. 14)
class _TwoScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv(x), self.conv(F.avg_pool2d(x, 2))]


class _FakeDiscriminators(nn.Module):
    """Same interface as networks.LIRDiscriminators, tiny."""

    def __init__(self, code_channels: int = 4, with_r: bool = True) -> None:
        super().__init__()
        self.discriminator_x = _TwoScale()
        self.discriminator_y = _TwoScale()
        self.representation_discriminator = (
            nn.Sequential(nn.Conv2d(code_channels, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)) if with_r else None
        )

    def forward(self, x, y, z=None):
        d_r = None
        if z is not None and self.representation_discriminator is not None:
            d_r = self.representation_discriminator(z)
        return self.discriminator_x(x), self.discriminator_y(y), d_r


def _fake_forward(noise_code: bool = True) -> LIRForward:
    torch.manual_seed(1)

    def img() -> torch.Tensor:
        return (torch.rand(2, 1, 16, 16) * 2 - 1).requires_grad_()

    def code() -> torch.Tensor:
        return torch.randn(2, 4, 4, 4).requires_grad_()

    return LIRForward(
        x=img(), y=img(), z_x=code(), z_y=code(), z_n=code() if noise_code else None, x_rec=img(), y_rec=img(),
        x2y=img(), y2x=img(), x_cyc=img(), y_cyc=img(), z_x2y=code(), z_y2x=code(),
        z_n_y2x=code() if noise_code else None,
    )  # fmt: skip


WEIGHT_OF = {
    "rec": "reconstruction", "cc": "cross_cycle", "adv": "adversarial", "adv_r": "representation",
    "bc": "background", "sc": "semantic", "kl": "kl",
}  # fmt: skip


def test_objective_generator_terms_and_total(fake_vgg_file) -> None:
    weights = LIRLossWeights()
    objective = LIRObjective(weights, vgg_weights=fake_vgg_file, semantic_layer="conv1_2")
    out, disc = _fake_forward(), _FakeDiscriminators()
    total, terms = objective.generator_loss(out, disc)
    assert set(terms) == set(GENERATOR_TERMS) | {"total"}
    assert all(terms[k] > 0 for k in GENERATOR_TERMS)
    weighted = sum(getattr(weights, WEIGHT_OF[k]) * terms[k] for k in GENERATOR_TERMS)
    assert total.item() == pytest.approx(weighted, rel=1e-5)
    assert terms["total"] == pytest.approx(weighted, rel=1e-5)
    # individual terms against the loss modules on the contract's pairs
    assert terms["rec"] == pytest.approx(
        (F.l1_loss(out.x, out.x_rec) + F.l1_loss(out.y, out.y_rec)).item(), rel=1e-5
    )
    assert terms["cc"] == pytest.approx((F.l1_loss(out.x, out.x_cyc) + F.l1_loss(out.y, out.y_cyc)).item(), rel=1e-5)
    lsgan = DomainAdversarialLoss()
    adv = lsgan.generator(disc.discriminator_x(out.y2x)) + lsgan.generator(disc.discriminator_y(out.x2y))
    assert terms["adv"] == pytest.approx(adv.item(), rel=1e-5)
    d_r = disc.representation_discriminator
    adv_r = ((d_r(out.z_x) - 0.5) ** 2).mean() + ((d_r(out.z_y) - 0.5) ** 2).mean()
    assert terms["adv_r"] == pytest.approx(adv_r.item(), rel=1e-5)
    bc = BackgroundConsistencyLoss()
    assert terms["bc"] == pytest.approx((bc(out.x, out.x2y) + bc(out.y, out.y2x)).item(), rel=1e-5)
    assert terms["kl"] == pytest.approx((0.5 * out.z_n**2).mean().item(), rel=1e-5)
    total.backward()
    assert out.x2y.grad is not None and out.z_n.grad is not None and out.z_x.grad is not None


def test_objective_discriminator_loss_detaches_generated() -> None:
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    out, disc = _fake_forward(), _FakeDiscriminators()
    total, terms = objective.discriminator_loss(out, disc)
    assert set(terms) == set(DISCRIMINATOR_TERMS) | {"total"}
    lsgan = DomainAdversarialLoss()
    d_x = lsgan.discriminator(disc.discriminator_x(out.x), disc.discriminator_x(out.y2x))
    assert terms["d_x"] == pytest.approx(d_x.item(), rel=1e-5)
    d_r = disc.representation_discriminator
    expected_r = ((d_r(out.z_y) - 1) ** 2).mean() + (d_r(out.z_x) ** 2).mean()
    assert terms["d_r"] == pytest.approx(expected_r.item(), rel=1e-5)
    assert total.item() == pytest.approx(terms["d_x"] + terms["d_y"] + terms["d_r"], rel=1e-5)
    total.backward()
    for name in ("x2y", "y2x", "z_x", "z_y"):
        assert getattr(out, name).grad is None, name
    assert all(p.grad is not None for p in disc.parameters())


def test_objective_semantic_weight_zero_never_touches_files(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("the VGG must not be built or loaded with semantic weight 0")

    monkeypatch.setattr(vgg_module, "resolve_vgg19_weights", forbidden)
    monkeypatch.setattr(VGG19Features, "__init__", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setenv(VGG19_WEIGHTS_ENV, "/nonexistent/vgg19.pth")
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    assert objective.semantic is None
    _, terms = objective.generator_loss(_fake_forward(), _FakeDiscriminators())
    assert terms["sc"] == 0.0 and terms["rec"] > 0


def test_objective_semantic_without_weights_raises(no_default_weights) -> None:
    with pytest.raises(FileNotFoundError, match=VGG19_WEIGHTS_FILENAME):
        LIRObjective()


def test_objective_switches() -> None:
    weights = LIRLossWeights(semantic=0.0)
    out = _fake_forward(noise_code=False)
    objective = LIRObjective(weights, use_background=False, gan_criterion="bce")
    assert objective.background is None
    total, terms = objective.generator_loss(out, _FakeDiscriminators(with_r=False))
    assert terms["bc"] == 0.0 and terms["adv_r"] == 0.0 and terms["kl"] == 0.0
    assert total.item() == pytest.approx(10 * terms["rec"] + 10 * terms["cc"] + terms["adv"], rel=1e-5)
    _, d_terms = objective.discriminator_loss(out, _FakeDiscriminators(with_r=False))
    assert d_terms["d_r"] == 0.0 and d_terms["d_x"] > 0

    out = _fake_forward()
    all_codes = LIRObjective(weights, kl_codes="all")
    _, terms = all_codes.generator_loss(out, _FakeDiscriminators())
    codes = [out.z_x, out.z_y, out.z_n, out.z_x2y, out.z_y2x, out.z_n_y2x]
    assert terms["kl"] == pytest.approx(sum((0.5 * c**2).mean().item() for c in codes), rel=1e-5)
    no_r = LIRObjective(LIRLossWeights(semantic=0.0, representation=0.0))
    _, terms = no_r.generator_loss(out, _FakeDiscriminators())
    assert terms["adv_r"] == 0.0
    with pytest.raises(ValueError):
        LIRObjective(weights, kl_codes="content")


def test_objective_with_lir_networks() -> None:
    config = lir.LIRConfig(base_channels=8, n_res=1, dis_channels=8, dis_layers=2, dis_scales=2)
    net, disc = lir.LIRNet(config), lir.LIRDiscriminators(config)
    torch.manual_seed(0)
    out = net(torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1)
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    g_total, g_terms = objective.generator_loss(out, disc)
    g_total.backward()
    assert all(g_terms[k] > 0 for k in ("rec", "cc", "adv", "adv_r", "bc", "kl"))
    assert net.generator_y.state_dict() and any(p.grad is not None for p in net.parameters())
    disc.zero_grad()
    d_total, d_terms = objective.discriminator_loss(out, disc)
    d_total.backward()
    assert math.isfinite(d_terms["total"]) and d_terms["d_r"] > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_objective_clean_noise_reaches_only_the_clean_discriminator() -> None:
    """With the clean domain's noise, D_Y judges x2y + noise on both sides of the game; nothing else changes."""
    objective = LIRObjective(LIRLossWeights(semantic=0.0))
    out, disc = _fake_forward(), _FakeDiscriminators()
    noise = 0.1 + torch.randn_like(out.x2y) * 0.05
    _, plain = objective.generator_loss(out, disc)
    total, terms = objective.generator_loss(out, disc, clean_noise=noise)
    lsgan = DomainAdversarialLoss()
    adv = lsgan.generator(disc.discriminator_x(out.y2x)) + lsgan.generator(disc.discriminator_y(out.x2y + noise))
    assert terms["adv"] == pytest.approx(adv.item(), rel=1e-5) and terms["adv"] != pytest.approx(plain["adv"], rel=1e-3)
    assert all(terms[k] == plain[k] for k in ("rec", "cc", "adv_r", "bc", "kl"))
    total.backward()
    assert out.x2y.grad is not None  # the noise is added, the translation still gets the gradient
    _, d_terms = objective.discriminator_loss(out, disc, clean_noise=noise)
    d_y = lsgan.discriminator(disc.discriminator_y(out.y), disc.discriminator_y(out.x2y + noise))
    assert d_terms["d_y"] == pytest.approx(d_y.item(), rel=1e-5)
    with pytest.raises(ValueError, match="clean_noise has shape"):
        objective.discriminator_loss(out, disc, clean_noise=noise[:1])
