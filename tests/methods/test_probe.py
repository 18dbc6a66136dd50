import os
from pathlib import Path
from typing import Any

import pytest
import torch

from methods.data.labelled import Split, load_labelled
from methods.errors import InputError
from methods.probe import ProbeSettings, _features, pooled_sides, run_probe
from methods.trunk.alexnet import AlexNet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cifar(cifar_tar: Path):
    return load_labelled(str(cifar_tar), 64, train_limit=2000, val_limit=1000, seed=0)


def test_pooling_follows_the_reference_table_and_adapts_to_other_shapes() -> None:
    big224 = pooled_sides(AlexNet("big"), 224)
    assert {k: c * s * s for k, (c, s) in big224.items()} == {
        "conv1": 9600, "conv2": 9216, "conv3": 9600, "conv4": 9600, "conv5": 9216}
    small64 = pooled_sides(AlexNet("small"), 64)
    assert small64["conv1"] == (64, 12) and small64["conv5"] == (256, 3)  # capped by the 3x3 map


def test_random_trunk_beats_chance_on_cifar10_and_stays_bit_identical(cifar) -> None:
    torch.manual_seed(0)
    trunk = AlexNet("big")
    trunk.train()  # the probe must put it in eval mode itself
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    result = run_probe(trunk, cifar, ProbeSettings(epochs=5, batch_size=64), CPU)
    assert set(result) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
    for layer, vals in result.items():
        assert vals["top1"] > 25.0, (layer, vals)  # chance is 10 %
        assert vals["top5"] > vals["top1"]
    after = trunk.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    assert all(p.requires_grad for p in trunk.parameters())  # flags restored


def test_streaming_probe_learns_too(cifar) -> None:
    torch.manual_seed(0)
    result = run_probe(AlexNet("big"), cifar, ProbeSettings(epochs=2, batch_size=64, cache="never"), CPU)
    assert min(v["top1"] for v in result.values()) > 20.0


def test_features_are_frozen_and_usable_by_autograd() -> None:
    trunk = AlexNet("big").eval()
    sides = pooled_sides(trunk, 64)
    feats = _features(trunk, torch.rand(3, 3, 64, 64), sides)
    assert not any(f.requires_grad for f in feats.values())
    head = torch.nn.Linear(feats["conv2"].shape[1], 2)
    head(feats["conv2"]).sum().backward()  # not an inference tensor: autograd can use it
    assert head.weight.grad is not None


def test_a_probe_that_touched_the_trunk_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The after-probe check must fire if anything moved the trunk (here: BN left in training mode)."""
    import methods.probe as probe

    data = load_labelled("demo", 64, train_limit=64, val_limit=32)
    real = probe._features

    def leaky(trunk, x, sides):
        trunk.train()
        with torch.no_grad():
            trunk(x)  # updates BatchNorm running statistics
        trunk.eval()
        return real(trunk, x, sides)

    monkeypatch.setattr(probe, "_features", leaky)
    with pytest.raises(RuntimeError, match="changed the frozen trunk"):
        run_probe(AlexNet("big"), data, ProbeSettings(epochs=1, batch_size=32), CPU)


@pytest.mark.parametrize(("cache", "train_crops"), [("never", True), ("always", False)])
def test_streamed_probe_trains_on_crops_and_evaluates_centre_views(
    monkeypatch: pytest.MonkeyPatch, cache: str, train_crops: bool
) -> None:
    """Streaming over an in-memory set trains with random-resized crop + flip (the protocol); the cache
    is extracted from centre views; the held-out split is always read as centre views."""
    data = load_labelled("demo", 64, train_limit=64, val_limit=32)
    calls: list[tuple[str, bool, bool]] = []
    real = Split.batches

    def recording(self: Split, *args: Any, **kwargs: Any) -> Any:
        name = "train" if self is data.train else "val"
        calls.append((name, bool(kwargs.get("augment")), bool(kwargs.get("crop"))))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Split, "batches", recording)
    run_probe(AlexNet("big"), data, ProbeSettings(epochs=2, batch_size=32, cache=cache), CPU)
    train = {(a, c) for name, a, c in calls if name == "train"}
    assert train == ({(True, True)} if train_crops else {(False, False)})
    assert {(a, c) for name, a, c in calls if name == "val"} == {(False, False)}
    assert sum(name == "train" for name, _, _ in calls) == (2 if train_crops else 1)


def test_auto_caching_is_decided_by_the_config_not_by_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` used to choose between the cached protocol (centre views) and the streamed one (random crops)
    by the machine's free pages at that moment, so one config could give two results; now the same config
    follows the same protocol everywhere, and a cache that cannot fit is refused in one line."""
    import methods.probe as probe

    data = load_labelled("demo", 64, train_limit=64, val_limit=32)
    sides = pooled_sides(AlexNet("big"), 64)
    needed = 64 * sum(c * s * s for c, s in sides.values()) * 2
    monkeypatch.setattr(probe, "_available_bytes", lambda device: 100 * needed)
    assert probe._use_cache("auto", data, sides, CPU) and not probe._use_cache("never", data, sides, CPU)
    monkeypatch.setattr(probe, "PROBE_CACHE_LIMIT_BYTES", needed - 1)
    assert not probe._use_cache("auto", data, sides, CPU)  # above the limit: streamed, however much is free
    assert probe._use_cache("always", data, sides, CPU)
    monkeypatch.setattr(probe, "PROBE_CACHE_LIMIT_BYTES", 8 * 2**30)
    monkeypatch.setattr(probe, "_available_bytes", lambda device: needed // 2)
    with pytest.raises(InputError) as refused:
        probe._use_cache("auto", data, sides, CPU)
    assert "set probe_cache: never" in str(refused.value) and "\n" not in str(refused.value)


def test_available_memory_counts_what_the_kernel_can_reclaim() -> None:
    import methods.probe as probe

    free_pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert probe._available_bytes(CPU) >= free_pages * 0.9  # MemAvailable >= MemFree (give or take a moment)
