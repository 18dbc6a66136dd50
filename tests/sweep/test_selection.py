"""Selections (``--where``/``--state``) and spec layering (``base:``, ``--set``), without Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from methods.errors import InputError
from sweep.grid import Trial
from sweep.selection import select
from sweep.spec import load_spec, spec_text


def _trial(**values: object) -> Trial:
    return Trial.of({"method": "rotnet", "arch": "small", "img_size": 64, **values})


@pytest.mark.parametrize(("where", "values", "expected"), [
    ("seed=1", {"seed": 1}, True),
    ("seed=1", {"seed": 2}, False),
    ("seed=0|2", {"seed": 2}, True),
    ("lr=0.05", {"lr": 0.05}, True),
    ("lr=5e-2", {"lr": 0.05}, True),
    ("augment=none", {"augment": "none"}, True),
    ("method=rotnet,seed=1", {"seed": 1}, True),
    ("method=bigan,seed=1", {"seed": 1}, False),
    ("sobel=true", {"sobel": True}, True),
    ("sobel=1", {"sobel": True}, False),  # a bool is not the number 1
    ("epochs=30", {}, True),  # a value the method's defaults resolved
])
def test_where_matches_values_as_written(where: str, values: dict[str, object], expected: bool) -> None:
    assert select([where], None, ["seed"]).matches(_trial(**values), "finished") is expected


def test_where_alternatives_states_and_ids() -> None:
    one, two = _trial(seed=1), _trial(seed=2)
    either = select(["seed=1", "seed=2"], ["finished,failed"], ["seed"])
    assert either.matches(one, "finished") and either.matches(two, "failed") and not either.matches(one, "running")
    by_id = select([f"id={two.id}"], None)
    assert by_id.matches(two, "pending") and not by_id.matches(one, "pending")
    assert not select(None, None) and select(None, ["pending"])


@pytest.mark.parametrize(("where", "state", "message"), [
    (["sed=1"], None, "--where sed=1: unknown key 'sed' (known: id, seed, method,"),
    (["seed"], None, "--where seed: expected KEY=VALUE pairs"),
    ([","], None, "--where: empty"),
    (None, ["done"], "--state done: unknown state (known: pending, running, finished, failed, diverged, "
                     "interrupted, pruned)"),
])
def test_bad_selections_are_one_line_naming_the_known(where: list[str] | None, state: list[str] | None,
                                                       message: str) -> None:
    with pytest.raises(InputError) as err:
        select(where, state, ["seed", "method"])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_layers_merge_mappings_replace_the_rest_and_null_removes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\ngrid: {seed: [0, 1], num_images: [1, 10]}\n"
                                     "fixed: {epochs: 2, img_size: 64}\nexclude: [{seed: [1]}]\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\ngrid: {num_images: null}\nfixed: {epochs: 3}\n"
                                     "exclude: []\n")
    spec = load_spec(tmp_path / "b.yaml", ["fixed.lr=0.1", "grid.seed=[4]"])
    assert spec.name == "b" and spec.grid == {"seed": [4]} and spec.exclude == []
    assert spec.fixed == {"epochs": 3, "img_size": 64, "lr": 0.1}
    text = spec_text(tmp_path / "b.yaml", ["fixed.lr=0.1"])
    assert text.startswith("# merged from") and "lr: 0.1" in text and "base:" not in text
    assert spec_text(tmp_path / "a.yaml") == (tmp_path / "a.yaml").read_text()  # a file alone is kept as written


@pytest.mark.parametrize(("files", "overrides", "message"), [
    ({"c.yaml": "base: c.yaml\nname: c\n"}, [], "c.yaml: base: includes itself"),
    ({"c.yaml": "base: gone.yaml\nname: c\n"}, [], "spec file not found:"),
    ({"c.yaml": "base: [a]\nname: c\n"}, [], "c.yaml: base: expected the path of another spec file"),
    ({"a.yaml": "name: a\ngrid: {seed: [0]}\nfixed: {img_size: 64}\n", "c.yaml": "base: a.yaml\nfixed: {epoch: 2}\n"},
     [], "c.yaml: fixed: unknown trial-config field 'epoch'"),
    ({"a.yaml": "name: a\ngrid: {seed: [0]}\nretries: -1\n", "c.yaml": "base: a.yaml\n"}, [], "a.yaml: retries:"),
    ({"a.yaml": "name: a\ngrid: {seed: [0]}\n"}, ["grid.seed=[0"], "--set grid.seed=[0: the value is not valid YAML"),
    ({"a.yaml": "name: a\ngrid: {seed: [0]}\n"}, ["retries=-2"], "--set retries=-2: retries:"),
    ({"a.yaml": "name: a\ngrid: {seed: [0]}\n"}, ["=3"], "--set =3: expected KEY=VALUE"),
])
def test_layer_errors_name_the_file_or_override_the_value_came_from(
    tmp_path: Path, files: dict[str, str], overrides: list[str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    top = tmp_path / ("c.yaml" if "c.yaml" in files else "a.yaml")
    with pytest.raises(InputError) as err:
        load_spec(top, overrides)
    shown = str(err.value).replace(f"{tmp_path}/", "")
    assert message in shown and "\n" not in shown, shown
