"""SelfEnsembleInferer: the mean over flipped/transposed copies, mapped back, of any network's output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ldct_invrep.inferers import SelfEnsembleInferer, _inverse, _transform


def _asymmetric_conv() -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9.0).reshape(1, 1, 3, 3))  # no symmetry at all
    return conv.eval()


def test_the_eight_transforms_are_distinct_and_inverted() -> None:
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    images = {tuple(_transform(x, k).flatten().tolist()) + tuple(_transform(x, k).shape) for k in range(8)}
    assert len(images) == 8
    for k in range(8):
        assert torch.equal(_inverse(_transform(x, k), k), x)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_self_ensemble_is_the_mean_over_the_group(n: int) -> None:
    conv = _asymmetric_conv()
    x = torch.randn(2, 1, 9, 13)  # non-square: transposed copies are 13 x 9
    expected = torch.stack([_inverse(conv(_transform(x, k)), k) for k in range(n)]).mean(0)
    with torch.no_grad():
        out = SelfEnsembleInferer(n)(x, conv)
        plain = SelfEnsembleInferer(1)(x, conv)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(plain, conv(x))
    assert not torch.allclose(out, plain)  # the asymmetric kernel answers differently per orientation


def test_self_ensemble_of_an_equivariant_network_changes_nothing() -> None:
    x = torch.randn(1, 1, 8, 8)
    blur = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(SelfEnsembleInferer(8)(x, blur), blur(x))


def test_self_ensemble_size_is_checked() -> None:
    with pytest.raises(ValueError, match="one of"):
        SelfEnsembleInferer(3)
