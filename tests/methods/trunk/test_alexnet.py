import math

import pytest
import torch

from methods.errors import InputError
from methods.optim import sgd
from methods.trunk.alexnet import AlexNet
from methods.trunk.arch import ARCHS, TAPS
from methods.trunk.heads import mlp_head


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("size", [63, 64, 96, 224])
def test_taps_have_the_architecture_shapes(arch: str, size: int) -> None:
    net = AlexNet(arch).eval()
    with torch.no_grad():
        taps = net.taps(torch.rand(2, 3, size, size))
    assert list(taps) == list(TAPS)
    spatial = _conv_out(size, 11, 4, 2)
    expected = []
    for i, (channels, *_rest) in enumerate(ARCHS[arch]):
        if i == 1:
            spatial = _conv_out(spatial, 3, 2, 0)  # pool1, then conv2 keeps the size
        if i == 2:
            spatial = _conv_out(spatial, 3, 2, 0)  # pool2
        expected.append((2, channels, spatial, spatial))
    assert [tuple(t.shape) for t in taps.values()] == expected
    # Taps are ReLU outputs: non-negative.
    assert all(float(t.min()) >= 0 for t in taps.values())


def test_big_alexnet_at_224_matches_the_reference_feature_maps() -> None:
    with torch.no_grad():
        taps = AlexNet("big").eval().taps(torch.rand(1, 3, 224, 224))
    assert [tuple(t.shape[1:]) for t in taps.values()] == [
        (96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 13, 13)]
    assert AlexNet("big").output_dim(224) == 256 * 6 * 6


@pytest.mark.parametrize(("arch", "size"), [("big", 224), ("small", 64), ("small", 97), ("big", 63), ("small", 128)])
def test_the_output_width_from_the_layer_table_is_the_forward_pass_s(arch: str, size: int) -> None:
    with torch.no_grad():
        assert AlexNet(arch).eval()(torch.zeros(1, 3, size, size)).shape[1] == AlexNet(arch).output_dim(size)


def test_taps_stop_at_the_deepest_requested_layer() -> None:
    net = AlexNet("small").eval()
    with torch.no_grad():
        taps = net.taps(torch.rand(1, 3, 64, 64), ["conv2"])
    assert list(taps) == ["conv2"]


def test_too_small_input_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="63 px"):
        AlexNet("big")(torch.rand(1, 3, 62, 62))


def test_reference_initialisation() -> None:
    torch.manual_seed(0)
    net = AlexNet("big")
    conv = net.convs[2][0]
    k, out = conv.kernel_size[0], conv.out_channels
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (k * k * out)), rel=0.05)
    head = mlp_head(256, 4, 128)
    assert float(head[0].weight.detach().std()) == pytest.approx(0.01, rel=0.1)


def test_sobel_front_end_is_frozen_and_left_out_of_the_optimiser() -> None:
    net = AlexNet("big", sobel=True)
    assert net.convs[0][0].in_channels == 2
    frozen = [p for p in net.sobel.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    optimiser = sgd([net], lr=0.1, momentum=0.9, weight_decay=0.0)
    in_optimiser = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert not in_optimiser & {id(p) for p in frozen}
    before = [p.clone() for p in frozen]
    loss = net(torch.rand(2, 3, 64, 64)).sum()
    loss.backward()
    optimiser.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.sobel.parameters(), strict=True))


def test_unknown_arch_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="big, small"):
        AlexNet("huge")
