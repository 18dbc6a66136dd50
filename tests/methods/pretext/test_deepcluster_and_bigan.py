"""DeepCluster and BiGAN on the trial engine: tiny runs, divergence as a status, collapse detection."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from methods import METHODS, TrialConfig, run_trial
from methods.errors import InputError
from methods.patches.sampling import centre_view
from methods.pretext._bigan_nets import SIZE, Generator, JointDiscriminator
from methods.pretext.bigan import BiGAN
from methods.pretext.deepcluster import DeepCluster
from tests.support.configs import Recorder, build_method, failing, tiny
from tests.support.sweeps import cli, sweep_env


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
def test_generator_and_discriminator_work_at_64_px_whatever_the_trial_size(size: int) -> None:
    g, d = Generator(16).eval(), JointDiscriminator(16).eval()
    z = torch.rand(2, 16) * 2 - 1
    with torch.no_grad():
        x = g(z)
        assert x.shape == (2, 3, SIZE, SIZE) and float(x.min()) >= 0 and float(x.max()) <= 1
        real = torch.rand(2, 3, size, size)
        assert torch.equal(d(real, z), torch.zeros(2))  # the original's logit starts at zero
        torch.nn.init.normal_(d.logit.weight)
        assert d(real, z).shape == (2,) and d(x, z).shape == (2,)


def test_the_latent_conditions_every_hidden_layer_of_the_generator_and_the_discriminator() -> None:
    """As ``apply_cond`` in jeffdonahue/bigan: a bias from z before the BatchNorm of every hidden layer."""
    g, d = Generator(16).eval(), JointDiscriminator(16).eval()
    assert len(g.conds) == len(g.ups) == 3 and len(d.conds) == len(d.convs) == 3
    torch.nn.init.normal_(d.logit.weight)
    x, z = torch.rand(2, 3, 64, 64), torch.rand(2, 16) * 2 - 1
    with torch.no_grad():
        before = d(x, z)
        d.conds[-1].fc.weight.zero_()  # z reaches the last layer: its output moves when that path is cut
        assert not torch.allclose(before, d(x, z))
        d.conds[0].fc.weight.zero_()
        d.conds[1].fc.weight.zero_()
        assert torch.allclose(d(x, z), d(x, -z))  # ...and only through those layers
    convs = [m for m in [*g.modules(), *d.modules()] if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert len(convs) == 8 and {tuple(m.kernel_size) for m in convs} == {(5, 5)}


def test_the_bigan_encoder_is_the_originals() -> None:
    """LeakyReLU(0.2) trunk without BatchNorm on conv1, one linear map of the flattened conv5 (no pool5),
    squashed into the uniform latent's (-1, 1); RotNet's trunk keeps ReLU and BatchNorm everywhere."""
    method = build_method(tiny(method="bigan", img_size=96, patches_per_epoch=64))
    assert isinstance(method, BiGAN)
    convs = list(method.trunk.convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in convs[0])
    assert all(any(isinstance(m, torch.nn.BatchNorm2d) for m in conv) for conv in convs[1:])
    assert all(isinstance(conv[-1], torch.nn.LeakyReLU) and conv[-1].negative_slope == 0.2 for conv in convs)
    with torch.no_grad():
        method.trunk.eval()
        conv5 = method.trunk.taps(torch.zeros(1, 3, 96, 96), ("conv5",))["conv5"]
        assert method.encoder_head.in_features == conv5.numel() and method.encoder_head.bias is None
        torch.nn.init.normal_(method.encoder_head.weight, 0.0, 1.0)  # a wild map: still inside the range
        encoded = method.encode(torch.rand(8, 3, 96, 96) * 4)
    assert encoded.shape == (8, 200) and float(encoded.abs().max()) <= 1.0 and float(encoded.abs().max()) > 0.5
    rotnet = build_method(tiny(method="rotnet"))
    assert all(isinstance(conv[-1], torch.nn.ReLU) and isinstance(conv[1], torch.nn.BatchNorm2d)
               for conv in rotnet.trunk.convs)


def test_the_bigan_learning_rate_is_constant_for_half_the_epochs_then_reaches_one_percent_at_the_last() -> None:
    method = build_method(tiny(method="bigan", epochs=6, patches_per_epoch=64))
    assert isinstance(method, BiGAN)
    factors = [method.schedule.lr_lambdas[0](epoch) for epoch in range(6)]
    assert factors[:3] == [1.0, 1.0, 1.0] and factors[-1] == pytest.approx(0.01)
    assert factors[3] > factors[4] > factors[5]


_NAN_BIGAN = failing(BiGAN, "nan-bigan", from_epoch=1, d_loss=float("inf"))
# A discriminator that always wins, from the first epoch on.
_COLLAPSED_BIGAN = failing(BiGAN, "collapsed-bigan", from_epoch=0, d_loss=1e-6, d_acc=1.0)


@pytest.mark.parametrize(("cls", "message"), [(_NAN_BIGAN, "non-finite d_loss"), (_COLLAPSED_BIGAN, "collapsed")])
def test_bigan_failures_end_the_trial_as_diverged_with_metrics_kept(
    monkeypatch: pytest.MonkeyPatch, cls: type[BiGAN], message: str
) -> None:
    monkeypatch.setitem(METHODS, cls.name, cls)
    report = Recorder()
    result = run_trial(tiny(method=cls.name, epochs=3, probe_epochs=1), report=report)
    finals: list[dict[str, Any]] = [r.metrics() for r in report.results]
    assert result.status == "diverged" and message in result.message
    kept = 1 if cls is _NAN_BIGAN else 0
    assert result.epochs_done == kept and len(result.history) == kept
    if kept:
        assert math.isfinite(result.history[0]["train.d_loss"])
    assert finals[-1]["diverged"] == 1.0 and "probe.conv1.top1" in finals[-1]


def test_deepcluster_clusters_pre_relu_features_and_trains_through_the_relu(monkeypatch: pytest.MonkeyPatch) -> None:
    """As facebookresearch/deepcluster's main.py: PCA gets fc7 without its last ReLU (signed values),
    while the training path keeps the ReLU before the top layer."""
    import methods.pretext.deepcluster as deepcluster

    method = build_method(tiny(method="deepcluster", patches_per_epoch=64))
    assert isinstance(method, DeepCluster)
    seen: list[torch.Tensor] = []
    real = deepcluster.pca_fit
    monkeypatch.setattr(deepcluster, "pca_fit", lambda x, dim: seen.append(x.clone()) or real(x, dim))
    method.start_epoch(0)
    (features,) = seen
    assert features.shape == (64, 64) and float(features.min()) < 0.0  # pre-ReLU
    # They are the classifier's eval-mode output before its final ReLU, on the clustering pass's centre view.
    view = centre_view(32, deepcluster.CLUSTERED_FRACTION)
    first = next(method.ctx.patches().batches_at(0, torch.arange(32), 32, views=view))
    method.trunk.eval()
    method.classifier.eval()
    with torch.no_grad():
        rectified = method.classifier(method.trunk(first))
    assert torch.allclose(features[:32].clamp(min=0.0), rectified, atol=1e-5)
    # Training: the top layer sees rectified features; the classifier still ends in its ReLU.
    method.trunk.train()
    method.classifier.train()
    inputs: list[torch.Tensor] = []
    method.top_layer.register_forward_hook(lambda module, args, out: inputs.append(args[0].detach().clone()))
    metrics = method.training_step(next(iter(method.batches(0))))
    assert math.isfinite(float(metrics["loss"]))
    assert float(inputs[0].min()) == 0.0 and float(inputs[0].max()) > 0.0
    assert isinstance(method.classifier[-1], torch.nn.ReLU) and len(method.state_dict()["classifier"]) == 4


def test_deepcluster_re_clusters_every_reassign_epochs_and_keeps_its_labels_between() -> None:
    recorder = Recorder()
    result = run_trial(tiny(method="deepcluster", epochs=3, reassign=2, probe_epochs=0, patches_per_epoch=64),
                       report=recorder)
    clustered = ["train.kmeans_seconds" in epoch for epoch in result.history]
    assert clustered == [True, False, True]
    assert "train.nmi" in result.history[2] and all("train.nmi" not in e for e in result.history[:2])
    first, second = (c["method"]["round"]["labels"] for c in recorder.checkpoints[:2])
    assert torch.equal(first, second)  # the round's pseudo-labels and top layer carry over
    assert not torch.equal(recorder.checkpoints[0]["method"]["round"]["top_layer"]["weight"],
                           recorder.checkpoints[1]["method"]["round"]["top_layer"]["weight"])  # it kept learning


def test_deepcluster_clusters_fresh_patches_each_round_as_many_as_the_other_methods_see(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A round of `reassign` epochs clusters that many epochs' worth of new patches and trains on them; over the
    trial that is epochs x patches_per_epoch distinct patches, as RotNet sees. The NMI anchors (epoch 0's
    first patches) are labelled again at the later clustering."""
    import methods.pretext.deepcluster as deepcluster
    from methods.patches.generator import PatchGenerator

    calls: list[tuple[str, int, torch.Tensor]] = []
    real = PatchGenerator.batches_at

    def recorded(self: PatchGenerator, epoch: int, indices: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls.append(("centre" if kwargs.get("views") is not None and torch.equal(
            kwargs["views"], centre_view(len(indices), deepcluster.CLUSTERED_FRACTION)) else "train",
            epoch, indices.clone()))
        return real(self, epoch, indices, *args, **kwargs)

    monkeypatch.setattr(PatchGenerator, "batches_at", recorded)
    n, epochs = 64, 4
    result = run_trial(tiny(method="deepcluster", epochs=epochs, reassign=2, probe_epochs=0, patches_per_epoch=n))
    clustered = [(epoch, idx) for kind, epoch, idx in calls if kind == "centre"]
    anchors = min(2 * n, deepcluster.MIN_PATCHES_PER_CLUSTER * 8)  # at most the first round's
    assert [(e, len(i)) for e, i in clustered] == [(0, 2 * n), (2, 2 * n), (0, anchors)]
    assert all(torch.equal(i, torch.arange(len(i))) for _, i in clustered)
    pool = {(e, int(i)) for e, idx in clustered[:2] for i in idx}
    rotnet = {(epoch, i) for epoch in range(epochs) for i in range(n)}  # what RotNet's epochs draw
    assert len(pool) == len(rotnet) == epochs * n
    trained = [(epoch, idx) for kind, epoch, idx in calls if kind == "train"]
    assert [e for e, _ in trained] == [0, 0, 2, 2] and all(len(i) == n for _, i in trained)
    assert all(int(i.max()) < 2 * n for _, i in trained)  # each epoch draws from its round's patches
    assert "train.nmi" in result.history[2] and 0.0 <= result.history[2]["train.nmi"] <= 1.0
    assert 0.0 <= result.history[2]["train.nmi_chance"] <= 1.0  # the same labelings, unpaired


def test_a_deepcluster_checkpoint_of_the_fixed_patch_set_is_refused_in_one_line() -> None:
    method = build_method(tiny(method="deepcluster", patches_per_epoch=64))
    state = method.state_dict()
    method.load_state_dict(state)  # this version's: fine
    del state["patches"]  # as the versions that clustered one fixed set wrote it
    with pytest.raises(InputError, match="clustered one fixed set of patches.*monosweep rerun --where id=ID"):
        method.load_state_dict(state)


def test_deepcluster_refuses_more_clusters_than_its_smallest_clustering_has_patches() -> None:
    ok = TrialConfig(method="deepcluster", clusters=100, patches_per_epoch=64, reassign=2, epochs=4)
    ok.resolved()  # two rounds of 128 patches
    with pytest.raises(InputError, match="exceeds the 64 patches of the smallest clustering"):
        ok.replace(epochs=5).resolved()  # the last round is one epoch


def test_deepcluster_warns_where_a_scaled_down_config_breaks_the_ratios_it_depends_on() -> None:
    paper = TrialConfig(method="deepcluster").resolved()
    assert DeepCluster.warnings(paper) == []  # 4096 -> 256, ~128 patches per cluster, ~5,000 steps per clustering
    small = TrialConfig(method="deepcluster", arch="small", img_size=64, head_hidden=0, clusters=100,
                        patches_per_epoch=1024, batch_size=64, epochs=24).resolved()
    said = DeepCluster.warnings(small)
    assert len(said) == 3 and all("\n" not in line for line in said)
    assert "pca_dim=256 does not reduce the 256 dims" in said[0] and "at most 128" in said[0]
    assert "leaves 10 of the 1024 patches of a clustering per cluster" in said[1] and "at most 26" in said[1]
    assert "every 16 SGD steps" in said[2] and "reassign to at least 19" in said[2]
    fixed = TrialConfig(method="deepcluster", arch="small", img_size=64, head_hidden=0, clusters=16, pca_dim=32,
                        reassign=20, patches_per_epoch=1024, batch_size=64, epochs=24).resolved()
    assert DeepCluster.warnings(fixed) == []
    short = fixed.model_copy(update={"epochs": 21, "options": fixed.options.model_copy(update={"clusters": 160})})
    assert any("leaves 6 of the 1024 patches" in line for line in DeepCluster.warnings(short))  # the last round


def test_validate_says_the_warnings_once_per_kind_and_still_accepts_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "dc.yaml"
    spec.write_text("name: dc\ngrid: {seed: [0, 1]}\nfixed: {method: deepcluster, arch: small, img_size: 64, "
                    "head_hidden: 0, clusters: 100, patches_per_epoch: 1024, batch_size: 64, epochs: 24}\n")
    done = cli("validate", str(spec), "--storage", str(tmp_path / "results"), env=sweep_env())
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("[monosweep] warning: ")]
    own = [line for line in warnings if ": deepcluster: " in line]  # (the other: no Sobel random trunk, baselines)
    assert len(own) == 3 and len(warnings) == 4 and all(line.endswith("(2 trials)") for line in warnings)
