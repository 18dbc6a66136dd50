"""The paper's first and third claims at CI scale, on the offline CIFAR-10 (64 px, small AlexNet):

* a RotNet trunk trained on patches of ONE photo beats random trunks on conv2, by more than the random
  seeds' own spread (claim 1; ../shared/science-calibration.md: +3 to +5 points at this scale);
* a supervised trunk beats that RotNet trunk on conv4 and conv5 (claim 3: the deep layers need more
  than one image).

conv1 is not asserted: at 64 px, upsampled 32 px CIFAR is blurry and random 11x11 filters already do
about as well (a tie, reported in docs/reproduction.md). The trials run in-process through
``run_trial`` (about 5 minutes on 2 cores); the platform around them is tested elsewhere.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from methods import TrialConfig, TrialResult, run_trial

SEEDS = (0, 1, 2)


def _trial(cifar: Path, **values: object) -> TrialResult:
    common = {"arch": "small", "img_size": 64, "probe_data": str(cifar), "probe_train_limit": 10000,
              "probe_val_limit": 5000, "probe_epochs": 20, "workers": 0, "device": "cpu"}
    torch.set_num_threads(2)
    return run_trial(TrialConfig(**{**common, **values}))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trunks(cifar_tar: Path) -> dict[str, list[TrialResult]]:
    return {
        "random": [_trial(cifar_tar, method="random", seed=s) for s in SEEDS],
        "rotnet": [_trial(cifar_tar, method="rotnet", source="sample:astronaut", num_images=1, augment="full",
                          epochs=24, patches_per_epoch=1024, batch_size=64, head_hidden=0)],
        "supervised": [_trial(cifar_tar, method="supervised", epochs=3, batch_size=64, head_hidden=512)],
    }


def _top1(result: TrialResult, layer: str) -> float:
    return result.probe[layer]["top1"]


def test_one_image_rotnet_beats_random_trunks_on_conv2_by_more_than_their_spread(
    trunks: dict[str, list[TrialResult]],
) -> None:
    random = [_top1(r, "conv2") for r in trunks["random"]]
    (rotnet,) = [_top1(r, "conv2") for r in trunks["rotnet"]]
    spread = max(random) - min(random)
    print(f"conv2 top-1: RotNet (one image) {rotnet:.1f}, random {random} (spread {spread:.1f})")
    assert trunks["rotnet"][0].history[-1]["train.acc"] > 0.6  # it learnt its pretext task (chance: 0.25)
    assert rotnet - statistics.fmean(random) > spread
    assert rotnet > max(random)


def test_a_supervised_trunk_beats_the_one_image_trunk_on_conv4_and_conv5(
    trunks: dict[str, list[TrialResult]],
) -> None:
    (rotnet,), (supervised,) = trunks["rotnet"], trunks["supervised"]
    for layer in ("conv4", "conv5"):
        print(f"{layer} top-1: supervised {_top1(supervised, layer):.1f}, RotNet {_top1(rotnet, layer):.1f}")
        assert _top1(supervised, layer) > _top1(rotnet, layer) + 1.0
