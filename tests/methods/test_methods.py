"""Every registered method runs a full tiny trial; RotNet learns; divergence is a status, not a crash."""

import math

import pytest
import torch

from methods import METHODS, InputError, TrialConfig, get_method, list_methods, run_trial
from methods.pretext.rotnet import RotNet, rotations
from methods.trial.reporter import CHECKPOINT_FILE, TRUNK_FILE
from methods.trunk.arch import TAPS
from tests.support.configs import Recorder, build_method, failing, poisoning, tiny


@pytest.mark.parametrize("name", list_methods())
def test_every_method_runs_a_full_tiny_trial(name: str) -> None:
    report = Recorder()
    result = run_trial(tiny(method=name), report=report)
    assert result.status == "finished"
    assert list(result.probe) == list(TAPS)
    for vals in result.probe.values():
        assert 0.0 <= vals["top1"] <= vals["top5"] <= 100.0
    epochs = 0 if not METHODS[name].trains() else 2
    assert result.epochs_done == epochs == len(result.history)
    assert report.files == [[CHECKPOINT_FILE]] * epochs + [[TRUNK_FILE]]
    if epochs:  # the final trunk is the one the last checkpoint holds (probing changed nothing)
        last, trunk = report.checkpoints[-1]["method"]["trunk"], report.trunks[-1]
        assert trunk.keys() == last.keys() and all(torch.equal(trunk[k], last[k]) for k in trunk)
    assert report.results == [result]  # the end is reported once, with the result the trial returns
    for h in result.history:
        assert math.isfinite(h["train.loss"])


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown method 'simclr'; known: ") as raised:
        get_method("simclr")
    known = str(raised.value).partition("known: ")[2].split(", ")
    assert known == sorted(known)  # (a plugin a sweep test registered in this process may be among them)
    assert {"bigan", "deepcluster", "random", "rotnet", "supervised"} <= set(known)
    with pytest.raises(InputError, match="unknown method 'simclr'"):
        TrialConfig(method="simclr")


def test_rotations_make_four_labelled_copies() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    rotated, labels = rotations(x)
    assert rotated.shape == (8, 3, 4, 4) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rotated[2], torch.rot90(x[0], 1, (1, 2)))


def test_rotnet_loss_falls_on_a_tiny_run() -> None:
    result = run_trial(tiny(method="rotnet", epochs=3, patches_per_epoch=512, probe_epochs=1))
    losses = [h["train.loss"] for h in result.history]
    assert losses[0] < math.log(4) + 0.02  # starts near chance
    assert losses[-1] < losses[0] - 0.03 and losses[-1] < math.log(4) - 0.05
    assert result.history[-1]["train.acc"] > 0.3  # chance: 0.25


def test_a_non_finite_loss_ends_the_trial_as_diverged_with_the_last_good_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(METHODS, "exploding", failing(RotNet, "exploding", from_epoch=1, loss=float("nan")))
    report = Recorder()
    result = run_trial(tiny(method="exploding", epochs=3), report=report)
    states = report.checkpoints
    assert result.status == "diverged" and "non-finite" in result.message
    assert result.epochs_done == 1 and len(states) == 1
    assert set(result.probe) == set(TAPS)  # the last good trunk was still probed
    assert all(math.isfinite(v["top1"]) for v in result.probe.values())


def test_probes_during_training_are_reported_and_leave_training_unchanged() -> None:
    plain = run_trial(tiny(method="rotnet", epochs=3, probe_epochs=1))
    probed = run_trial(tiny(method="rotnet", epochs=3, probe_epochs=1, probe_every=1))
    assert ["probe.mean.top1" in h for h in probed.history] == [True, True, False]  # the end has the final probe
    assert 0 < probed.history[0]["probe.conv3.top1"] <= 100
    assert [h["train.loss"] for h in probed.history] == [h["train.loss"] for h in plain.history]
    assert probed.probe == plain.probe


def test_nan_weights_end_the_trial_as_diverged_and_the_epoch_1_trunk_is_probed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real divergence: epoch 2 fills a conv weight with NaN. The trial keeps epoch 1's state, probes
    it with finite results, and the final trunk.pt is bit-identical to epoch 1's checkpointed trunk."""
    monkeypatch.setitem(METHODS, "poisoned", poisoning(RotNet, "poisoned", from_epoch=1))
    report = Recorder()
    result = run_trial(tiny(method="poisoned", epochs=3), report=report)
    checkpoints, finals = report.checkpoints, report.trunks
    assert result.status == "diverged" and "non-finite loss" in result.message
    assert result.epochs_done == 1 and len(checkpoints) == 1 and len(finals) == 1
    good, final = checkpoints[0]["method"]["trunk"], finals[0]
    assert final.keys() == good.keys() and all(torch.equal(final[k], good[k]) for k in good)  # NaN != NaN
    assert set(result.probe) == set(TAPS)
    assert all(math.isfinite(v["top1"]) and math.isfinite(v["top5"]) for v in result.probe.values())


def test_training_batches_share_one_buffer_and_equal_fresh_patches() -> None:
    """The training loop opts into the generator's reused output buffer; the patches stay the same."""
    method = build_method(tiny(method="rotnet", patches_per_epoch=80))
    pointers, batches = [], []
    for batch in method.batches(1):
        pointers.append(batch.untyped_storage().data_ptr())
        batches.append(batch.clone())
    assert len(set(pointers)) == 1 and [len(b) for b in batches] == [32, 32, 16]  # views of one buffer
    fresh = method.ctx.patches().epoch_batches(1, 32, 80)
    assert all(torch.equal(a, b) for a, b in zip(batches, fresh, strict=True))


@pytest.mark.parametrize("name", list_methods())
def test_every_method_declares_what_the_platform_needs_in_its_own_file(name: str) -> None:
    """Its options (each with a default), training defaults, what it trains on and its cost for `plan`."""
    from typing import get_args

    from methods.method import TrainsOn
    from methods.trial.config import MethodOptions, TrainingDefaults

    method = get_method(name)
    assert issubclass(method.Options, MethodOptions) and isinstance(method.defaults, TrainingDefaults)
    assert method.Options().model_dump().keys() == method.Options.model_fields.keys()  # every option defaulted
    assert method.trains_on in get_args(TrainsOn) and method.passes_per_patch >= 0
    resolved = TrialConfig(method=name).resolved()
    assert set(method.Options.model_fields) <= set(resolved.to_dict())
    assert resolved.epochs == (method.defaults.epochs if method.trains() else 0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_lr_scaling_linear_keeps_each_sgd_methods_lr_per_sample_and_leaves_adam_and_given_lrs(name: str) -> None:
    method = METHODS[name]
    original = method.defaults
    half = TrialConfig(method=name, batch_size=max(1, original.batch_size // 2), lr_scaling="linear").resolved()
    expected = original.lr * half.batch_size / original.batch_size if method.lr_scales_with_batch else original.lr
    assert half.lr == pytest.approx(expected)
    assert TrialConfig(method=name, batch_size=half.batch_size).resolved().lr == original.lr  # none: as before
    assert TrialConfig(method=name, batch_size=half.batch_size, lr=0.3, lr_scaling="linear").resolved().lr == 0.3
    assert not METHODS["bigan"].lr_scales_with_batch and METHODS["deepcluster"].lr_scales_with_batch


def test_a_checkpoint_without_a_newer_field_matches_only_that_fields_default() -> None:
    config = TrialConfig(method="deepcluster", reassign=1).resolved()
    stored = {k: v for k, v in config.to_dict().items() if k not in ("lr_scaling", "reassign")}  # an older version's
    assert config.differs_from(stored) == []
    changed = TrialConfig(method="deepcluster", reassign=2, lr_scaling="linear").resolved()
    assert changed.differs_from(stored) == ["lr_scaling", "reassign"]  # (at its own batch the lr is the same)
    with pytest.raises(InputError, match="lr_scaling='square'; choose one of none, linear"):
        TrialConfig(lr_scaling="square")


@pytest.mark.parametrize("name", ["bigan", "random"])
def test_a_checkpoint_from_before_trunk_of_matches_the_trunk_its_method_built(name: str) -> None:
    """Before ``trunk_of`` every trunk was its own method's: such a checkpoint resumes, and one that would now be
    built otherwise (a random trunk as BiGAN's) does not."""
    config = TrialConfig(method=name).resolved()
    stored = {k: v for k, v in config.to_dict().items() if k != "trunk_of"}
    assert config.trunk_of == name and config.differs_from(stored) == []
    if name == "random":
        assert TrialConfig(method=name, trunk_of="bigan").resolved().differs_from(stored) == ["trunk_of"]
