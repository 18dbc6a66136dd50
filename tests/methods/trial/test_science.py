"""The paper's first and third claims at CI scale, on the offline CIFAR-10 (64 px, small AlexNet):

* a RotNet trunk trained on patches of ONE photo (768 SGD steps) beats random trunks on conv2, by more
  than the random seeds' own spread (claim 1; ../shared/science-calibration.md: +3 to +5 points at ~700
  steps); so does a DeepCluster trunk (1,280 steps, Sobel input) against random trunks with Sobel input;
* a supervised trunk beats that RotNet trunk on conv4 and conv5 (claim 3: the deep layers need more
  than one image).

conv1 is not asserted: at 64 px, upsampled 32 px CIFAR is blurry and random 11x11 filters already do
about as well (a tie, reported in docs/reproduction.md). The trials run through ``run_trial`` in a
process of their own that starts with the test session (``tests/support/science.py``: about 20 minutes of
one core beside the rest of the suite); the platform around them is tested elsewhere.
"""

from __future__ import annotations

import statistics

import pytest

from methods import TrialResult
from tests.support import science

pytestmark = [pytest.mark.slow, pytest.mark.timeout(science.WAIT_S)]  # (it may wait for its trunks' process)


def _top1(result: TrialResult, layer: str) -> float:
    return result.probe[layer]["top1"]


@pytest.mark.parametrize(("method", "baseline"), [("rotnet", "random"), ("deepcluster", "random_sobel")])
def test_one_image_trunk_beats_random_trunks_of_the_same_input_on_conv2_by_more_than_their_spread(
    science_trunks: dict[str, list[TrialResult]], method: str, baseline: str
) -> None:
    random = [_top1(r, "conv2") for r in science_trunks[baseline]]
    (trained,) = science_trunks[method]
    ours = _top1(trained, "conv2")
    spread = max(random) - min(random)
    print(f"conv2 top-1: {method} (one image) {ours:.1f}, {baseline} {random} (spread {spread:.1f})")
    if method == "rotnet":
        assert trained.history[-1]["train.acc"] > 0.6  # it learnt its pretext task (chance: 0.25)
    assert ours - statistics.fmean(random) > spread
    assert ours > max(random)


def test_a_supervised_trunk_beats_the_one_image_trunk_on_conv4_and_conv5(
    science_trunks: dict[str, list[TrialResult]],
) -> None:
    (rotnet,), (supervised,) = science_trunks["rotnet"], science_trunks["supervised"]
    for layer in ("conv4", "conv5"):
        print(f"{layer} top-1: supervised {_top1(supervised, layer):.1f}, RotNet {_top1(rotnet, layer):.1f}")
        assert _top1(supervised, layer) > _top1(rotnet, layer) + 1.0
