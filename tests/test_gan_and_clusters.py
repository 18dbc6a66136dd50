"""DeepCluster and BiGAN on the trial engine: tiny runs, divergence as a status, collapse detection."""

import math
from typing import Any

import pytest
import torch
from conftest import failing, tiny

from methods import METHODS, run_trial
from methods.bigan import BiGAN, Generator, JointDiscriminator


def test_tiny_deepcluster_keeps_several_clusters_and_probes() -> None:
    result = run_trial(tiny(method="deepcluster", epochs=2, probe_epochs=1))
    assert result.status == "finished"
    assert all(h["train.clusters"] > 1 for h in result.history)
    assert "train.nmi" not in result.history[0] and 0.0 <= result.history[1]["train.nmi"] <= 1.0
    assert len(result.probe) == 5


def test_tiny_bigan_has_finite_losses_and_its_encoder_trunk_probes() -> None:
    result = run_trial(tiny(method="bigan", epochs=2, probe_epochs=1))
    assert result.status == "finished" and len(result.history) == 2, result.message
    for h in result.history:
        assert math.isfinite(h["train.d_loss"]) and math.isfinite(h["train.ge_loss"])
        assert 0.0 <= h["train.d_acc"] <= 1.0
    assert len(result.probe) == 5 and all(math.isfinite(v["top1"]) for v in result.probe.values())


@pytest.mark.parametrize("size", [64, 96, 224])
def test_generator_and_discriminator_work_at_any_trial_size(size: int) -> None:
    g, d = Generator(16, size).eval(), JointDiscriminator(16, size).eval()
    z = torch.rand(2, 16) * 2 - 1
    with torch.no_grad():
        x = g(z)
        logits = d(x, z)
    assert x.shape == (2, 3, size, size) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert logits.shape == (2,)


_NAN_BIGAN = failing(BiGAN, "nan-bigan", from_epoch=1, d_loss=float("inf"))
# A discriminator that always wins, from the first epoch on.
_COLLAPSED_BIGAN = failing(BiGAN, "collapsed-bigan", from_epoch=0, d_loss=1e-6, d_acc=1.0)


@pytest.mark.parametrize(("cls", "message"), [(_NAN_BIGAN, "non-finite d_loss"), (_COLLAPSED_BIGAN, "collapsed")])
def test_bigan_failures_end_the_trial_as_diverged_with_metrics_kept(
    monkeypatch: pytest.MonkeyPatch, cls: type[BiGAN], message: str
) -> None:
    monkeypatch.setitem(METHODS, cls.name, cls)
    finals: list[dict[str, Any]] = []
    result = run_trial(tiny(method=cls.name, epochs=3, probe_epochs=1),
                       report=lambda metrics, ckpt: finals.append(dict(metrics)) if "final" in metrics else None)
    assert result.status == "diverged" and message in result.message
    kept = 1 if cls is _NAN_BIGAN else 0
    assert result.epochs_done == kept and len(result.history) == kept
    if kept:
        assert math.isfinite(result.history[0]["train.d_loss"])
    assert finals[-1]["diverged"] == 1.0 and "probe.conv1.top1" in finals[-1]
