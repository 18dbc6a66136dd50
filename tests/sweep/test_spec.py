"""Spec loading, grid expansion and trial identity: no Ray needed."""

import time
from pathlib import Path

import pytest

from sweep.cli import main
from sweep.grid import expand, trial_id
from sweep.spec import load_spec
from tests.support import REPO
from tests.support.servers import S3_CREDENTIALS, free_port

BASE = """
name: ids
grid:
  method: [rotnet, random]
  seed: [0, 1]
fixed:
  img_size: 64
  lr: 0.01
"""


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# trial-quickstart.yaml is one trial's config (monosweep trial --config), not a sweep
SWEEP_EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml") if p.name != "trial-quickstart.yaml")


@pytest.mark.parametrize("example", SWEEP_EXAMPLES, ids=lambda p: p.name)
def test_every_example_spec_loads_and_expands(example: Path) -> None:
    trials = expand(load_spec(example))
    assert trials and len({t.id for t in trials}) == len(trials)


def test_the_paper_grid_plans_its_rows_and_gpu_hours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(REPO / "examples" / "paper.yaml"), "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "87 trials" in out
    hours = float(out.split("compute: ~")[1].split()[0].replace(",", ""))
    assert 100 < hours < 5000  # hundreds of GPU-hours: a cluster job, as the paper's grid is


def test_plan_answers_for_a_bucket_it_cannot_reach_and_creates_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The paper's placeholder bucket, an endpoint where nothing listens: still the grid and its GPU-hours,
    the warning that nothing finished is assumed; a local storage that does not exist stays so."""
    for name, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert main(["plan", str(REPO / "examples" / "paper.yaml")]) == 0
    assert time.monotonic() - started < 30  # no minutes of retries for a look
    captured = capsys.readouterr()
    assert "87 trials - 0 finished" in captured.out and "GPU-hours" in captured.out
    (warning,) = captured.err.strip().splitlines()
    assert "s3://your-bucket/sweeps/paper cannot be read" in warning and "assume nothing has finished" in warning
    assert main(["plan", str(REPO / "examples" / "quickstart.yaml"), "--storage", str(tmp_path / "none")]) == 0
    assert not (tmp_path / "none").exists()


def test_quickstart_spec_expands() -> None:
    spec = load_spec(REPO / "examples" / "quickstart.yaml")
    trials = expand(spec)
    assert len(trials) == 4 and len({t.id for t in trials}) == 4
    assert {t.config.method for t in trials} == {"rotnet", "random"}
    assert all(t.config.epochs is not None for t in trials)  # resolved with the method defaults


def test_reordering_keys_or_values_keeps_ids_and_changing_a_value_does_not(tmp_path: Path) -> None:
    ids = {t.id for t in expand(load_spec(_write(tmp_path, BASE)))}
    reordered = """
fixed:
  lr: 0.01
  img_size: 64
grid:
  seed: [1, 0]
  method: [random, rotnet]
name: ids
"""
    assert {t.id for t in expand(load_spec(_write(tmp_path, reordered, "b.yaml")))} == ids
    moved = BASE.replace("  seed: [0, 1]\n", "  seed: [0, 1]\n  img_size: [64]\n").replace("  img_size: 64\n", "")
    assert {t.id for t in expand(load_spec(_write(tmp_path, moved, "c.yaml")))} == ids  # fixed -> axis
    changed = BASE.replace("lr: 0.01", "lr: 0.02")
    assert not ids & {t.id for t in expand(load_spec(_write(tmp_path, changed, "d.yaml")))}
    assert trial_id({"lr": 1}) == trial_id({"lr": 1.0})  # an int written for a float is the same value


def test_per_method_values_apply_to_that_method_only(tmp_path: Path) -> None:
    trials = expand(load_spec(_write(tmp_path, BASE + "per_method: {rotnet: {epochs: 3, lr: 0.05}}\n")))
    by_method = {t.values["method"]: t for t in trials}
    assert by_method["rotnet"].config.epochs == 3 and by_method["rotnet"].config.lr == 0.05
    assert by_method["random"].values["lr"] == 0.01 and "epochs" not in by_method["random"].values
    plain = {t.id for t in expand(load_spec(_write(tmp_path, BASE, "plain.yaml")))}
    assert {t.id for t in trials if t.values["method"] == "random"} <= plain  # the other method's ids stay
    assert not {t.id for t in trials if t.values["method"] == "rotnet"} & plain


def test_exclude_rules_drop_matching_trials(tmp_path: Path) -> None:
    text = BASE + "exclude:\n  - {method: random, seed: [1]}\n"
    trials = expand(load_spec(_write(tmp_path, text)))
    assert sorted((t.values["method"], t.values["seed"]) for t in trials) == [
        ("random", 0), ("rotnet", 0), ("rotnet", 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ngrid: {seed: [0, 1]\n", "malformed YAML"),
        (BASE + "resourcez: {cpu: 1}\n", "resourcez: unknown key"),
        (BASE.replace("rotnet, random", "rotnet, simclr"), "grid.method[1] = 'simclr': unknown method 'simclr'"),
        (BASE + "  augment: blurry\n", "unknown augmentation 'blurry'"),
        (BASE + "  source: /no/such/photo.jpg\n", "source not found: /no/such/photo.jpg"),
        (BASE.replace("seed: [0, 1]", "seed: []"), "grid: Value error, axis 'seed' is empty"),
        (BASE.replace("seed: [0, 1]", "colour: [red]"), "unknown trial-config field 'colour'"),
        (BASE + "exclude:\n  - {flavour: x}\n", "not a grid axis or fixed value"),
        ("grid: {seed: [0]}\n", "name: required key is missing"),
        (BASE + "resources: {gpus: 1}\n", "resources.gpus: unknown key"),
        (BASE + "per_method: {bigan: {epochs: 2}}\n", "per_method.bigan: not a method of this sweep (rotnet, random)"),
        (BASE + "per_method: {rotnet: {seed: 2}}\n", "per_method.rotnet.seed is a grid axis"),
        (BASE + "per_method: {rotnet: {epochz: 2}}\n", "unknown trial-config field 'epochz'"),
        (BASE + "search: {num_samples: 2, space: {momentum: {low: 0.9, high: 0.1}}}\n",
         "search.space.momentum: needs `low` < `high`"),
        (BASE + "search: {num_samples: 2, space: {momentum: {low: 0, high: 1, log: true}}}\n",
         "search.space.momentum: a log-scale range needs `low` > 0"),
        (BASE + "search: {num_samples: 2, space: {lr: {low: 0.1, high: 1}}}\n",
         "search.space.lr is also a grid axis or a fixed value: set it once"),
        (BASE + "search: {num_samples: 2, space: {flavour: {low: 0.1, high: 1}}}\n",
         "unknown trial-config field 'flavour'"),
        (BASE + "search: {num_samples: 2, space: {momentum: {low: 0.1, high: 1, step: 2}}}\n",
         "search.space.momentum.step: unknown key (known: low, high, log, integer, choices)"),
        (BASE + "search: {num_samples: 2, space: {probe_epochs: {low: -5, high: 3, integer: true}}}\n",
         "search.space.probe_epochs = -5: probe_epochs=-5 must be >= 0"),
    ],
)
def test_bad_specs_fail_with_one_line_naming_file_and_field(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, text)
    assert main(["validate", str(path), "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"monosweep validate: error: {path}") and message.replace("Value error, ", "") in err[0]
    assert not (tmp_path / "results" / "ids" / "trials").exists()  # nothing was submitted


def test_plan_of_a_2000_trial_grid_answers_in_under_two_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """
name: big
grid:
  method: [rotnet, deepcluster, bigan, random, supervised]
  seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  augment: [full, none, no-crop, no-scale, no-rotate, no-shear, no-hflip, no-jitter]
  num_images: [1, 2, 3, 4, 5]
fixed: {img_size: 64, patches_per_epoch: 100000, source: samples}
"""
    path = _write(tmp_path, text)
    start = time.perf_counter()
    assert main(["plan", str(path), "--storage", str(tmp_path / "results")]) == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "2000 trials - 0 finished, 0 diverged, 2000 to run" in out
    assert elapsed < 2.0, elapsed


def test_the_cost_estimate_counts_the_trunks_flops_and_the_methods_passes() -> None:
    import torch
    from torch import nn

    from methods import TrialConfig
    from methods.pretext.deepcluster import DeepCluster
    from methods.trial.cost import _forward_flops, trial_cost
    from methods.trunk.alexnet import AlexNet

    def hooked(arch: str, size: int) -> float:  # what torch runs: 2 x MACs of every conv and linear layer
        flops = 0.0

        def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            nonlocal flops
            if isinstance(module, nn.Conv2d):
                flops += 2 * out.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            elif isinstance(module, nn.Linear):
                flops += 2 * out.numel() * module.in_features

        trunk = AlexNet(arch).eval()
        for module in trunk.modules():
            module.register_forward_hook(count)
        with torch.no_grad():
            trunk(torch.zeros(1, 3, size, size))
        return flops

    for arch, size in (("big", 224), ("small", 64), ("big", 97)):
        assert _forward_flops(arch, size, 0) == hooked(arch, size), (arch, size)
    flops = hooked("big", 224)
    assert _forward_flops("big", 224, 0) == pytest.approx(flops, rel=0.02)
    common = {"probe_epochs": 0, "epochs": 10, "batch_size": 64}
    rotnet, supervised = (trial_cost(TrialConfig(method=m, **common).resolved()) for m in ("rotnet", "supervised"))
    assert rotnet.train_flops == pytest.approx(4 * supervised.train_flops)  # four rotations per patch
    assert trial_cost(TrialConfig(method="random").resolved()).train_flops == 0.0
    every, fourth = (TrialConfig(method="deepcluster", reassign=r, **common).resolved() for r in (1, 4))
    # A feature pass over each patch once (its round's clustering), and over the NMI anchors at every later one.
    anchors = DeepCluster.anchor_count(every) / (10 * every.patches_per_epoch)
    assert trial_cost(every).train_flops == pytest.approx((1 + (1 + 9 * anchors) / 3) * supervised.train_flops)
    assert trial_cost(fourth).train_flops == pytest.approx((1 + (1 + 2 * anchors) / 3) * supervised.train_flops)


def test_plan_prints_the_gpu_hours_of_a_paper_scale_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "name: big\ngrid: {method: [rotnet, random], seed: [0, 1]}\nfixed: {probe_data: demo}\n")
    assert main(["plan", str(path), "--storage", str(tmp_path / "r"), "--tflops", "100"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("compute:"))
    hours = float(line.split("~")[1].split()[0].replace(",", ""))
    assert 1.0 < hours < 20.0 and "at 100 TFLOP/s" in line  # two paper-protocol RotNet trials: a few GPU-hours


def test_plans_table_per_axis_counts_values_as_the_trials_hold_them(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``lr: [1]`` is the trials' 1.0: the per-axis table must count it (it once showed 0)."""
    path = _write(tmp_path, "name: axes\ngrid: {method: [rotnet], lr: [1, 0.5], seed: [0, 1]}\n"
                            "fixed: {probe_data: demo}\n")
    assert main(["plan", str(path), "--storage", str(tmp_path / "r")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("lr ")]
    assert rows == [["lr", "1", "2", "0", "2"], ["lr", "0.5", "2", "0", "2"]]


def test_validate_warns_when_a_sobel_method_has_no_random_trunk_of_the_same_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = "fixed: {probe_data: demo, clusters: 8, patches_per_epoch: 512}\n"
    colour = _write(tmp_path, "name: a\ngrid: {method: [deepcluster, rotnet, random]}\n" + common, "a.yaml")
    assert main(["validate", str(colour), "--storage", str(tmp_path / "r")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "no random trunk" in line]
    assert len(said) == 1 and "deepcluster (sobel: true)" in said[0] and "add random trials with sobel: true" in said[0]
    both = _write(tmp_path, "name: b\ngrid: {method: [deepcluster, rotnet, random], sobel: [true, false]}\n"
                  "exclude: [{method: [deepcluster], sobel: [false]}, {method: [rotnet], sobel: [true]}]\n" + common,
                  "b.yaml")
    assert main(["validate", str(both), "--storage", str(tmp_path / "r")]) == 0
    assert "no random trunk" not in capsys.readouterr().err
    unprobed = _write(tmp_path, "name: c\ngrid: {method: [deepcluster]}\nfixed: {probe_epochs: 0, clusters: 8, "
                      "patches_per_epoch: 512}\n", "c.yaml")
    assert main(["validate", str(unprobed), "--storage", str(tmp_path / "r")]) == 0
    assert "no random trunk" not in capsys.readouterr().err  # nothing to compare


def test_validate_warns_when_bigan_has_no_random_trunk_built_as_its_own(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BiGAN's encoder (LeakyReLU, no conv1 BatchNorm) is another random trunk than the plain AlexNet: the
    plain random trials of a grid are no baseline for it, and the warning says what to add."""
    common = "fixed: {probe_data: demo, patches_per_epoch: 512}\n"
    plain = _write(tmp_path, "name: a\ngrid: {method: [bigan, rotnet, random]}\n" + common, "a.yaml")
    assert main(["validate", str(plain), "--storage", str(tmp_path / "r")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "no random trunk" in line]
    assert len(said) == 1 and "a.yaml: bigan (sobel: false) has no random trunk" in said[0], said
    assert "add random trials with trunk_of: 'bigan'" in said[0]
    both = _write(tmp_path, "name: b\ngrid: {method: [bigan, rotnet, random], trunk_of: [rotnet, bigan]}\n"
                  "exclude: [{method: [bigan], trunk_of: [rotnet]}, {method: [rotnet], trunk_of: [bigan]}]\n" + common,
                  "b.yaml")
    assert main(["validate", str(both), "--storage", str(tmp_path / "r")]) == 0
    assert "no random trunk" not in capsys.readouterr().err


def test_trunk_of_builds_the_trunk_as_that_methods_original_and_an_unknown_name_is_one_line() -> None:
    from methods import TrialConfig
    from methods.errors import InputError
    from methods.trunk.arch import PLAIN

    bigan = TrialConfig(method="bigan").resolved()
    assert TrialConfig(method="random", trunk_of="bigan").resolved().trunk_style == bigan.trunk_style != PLAIN
    assert TrialConfig(method="random").resolved().trunk_of == "random"
    assert TrialConfig(method="random").resolved().trunk_style == PLAIN
    with pytest.raises(InputError, match="unknown method 'bigann'; known: .*bigan"):
        TrialConfig(method="random", trunk_of="bigann")
