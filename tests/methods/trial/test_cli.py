import subprocess
import sys

import pytest

from methods import list_methods
from sweep.cli import main
from tests.support import REPO


def test_help_teaches_by_example() -> None:
    out = subprocess.run([sys.executable, "-m", "sweep.cli", "trial", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "examples:" in out.stdout and "--probe-data" in out.stdout and "only-<step>" in out.stdout


def test_list_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", "--list-methods"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list_methods() and {"rotnet", "deepcluster", "bigan", "supervised", "random"} <= set(names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "simclr"], "unknown method 'simclr'; known: bigan, deepcluster, "),  # (+ any plugin registered)
        (["--source", "/no/such/photo.jpg"], "source not found: /no/such/photo.jpg"),
        (["--augment", "no-blur"], "unknown augmentation 'no-blur'"),
        (["--img-size", "32"], "img_size=32 is below the 63 px AlexNet needs"),
        (["--probe-data", "/no/such/set"], "labelled data not found: /no/such/set"),
        (["--source", str(REPO / "pyproject.toml")], "cannot read image"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", *args, "--epochs", "0", "--probe-epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("monosweep trial: error: ") and message in err[0]


def test_a_tiny_trial_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trial", "--method", "random", "--img-size", "64", "--probe-epochs", "2",
                 "--probe-train-limit", "200", "--probe-val-limit", "100", "--device", "cpu", "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "random on sample:astronaut" in out
    assert all(layer in out for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"))


def test_the_papers_protocol_on_a_cpu_stops_before_it_starts_with_the_estimate(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The defaults are the paper's (a multi-GPU-hour job): on a CPU, one line with the estimate and the way on,
    nothing run; a small trial and an explicit --yes pass the check."""
    from methods.trial.cli import _check_cpu_budget
    from methods.trial.config import TrialConfig

    assert main(["trial", "--source", "samples", "--num-images", "5", "--seed", "3", "--device", "cpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "TFLOP: about" in line and "days" in line and "--yes" in line and "trial-quickstart.yaml" in line
    paper = TrialConfig(source="samples", num_images=5, seed=3, device="cpu")
    _check_cpu_budget(paper, confirmed=True)
    small = TrialConfig(method="rotnet", source="sample:astronaut", img_size=64, epochs=2, patches_per_epoch=2048,
                        batch_size=64, probe_data="demo", probe_epochs=8, device="cpu")
    _check_cpu_budget(small, confirmed=False)
