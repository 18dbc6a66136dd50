from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from methods.data.sources import SAMPLES, resolve_sources
from methods.errors import InputError


def test_every_builtin_sample_loads_offline_as_rgb_uint8() -> None:
    for source in resolve_sources("samples", len(SAMPLES), seed=0):
        image = source.load()
        assert image.dtype.is_floating_point is False and image.shape[0] == 3 and min(image.shape[1:]) >= 300


def test_picking_n_images_is_deterministic_in_the_seed() -> None:
    a = [s.name for s in resolve_sources("samples", 5, seed=3)]
    b = [s.name for s in resolve_sources("samples", 5, seed=3)]
    c = [s.name for s in resolve_sources("samples", 5, seed=4)]
    assert a == b and len(set(a)) == 5 and a != c


def test_a_folder_and_a_list_of_files(tmp_path: Path) -> None:
    for i in range(4):
        Image.fromarray(np.full((80, 90, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    picked = resolve_sources(str(tmp_path), 2, seed=0)
    assert len(picked) == 2 and all(Path(s.name).suffix == ".png" for s in picked)
    assert tuple(picked[0].load().shape) == (3, 80, 90)
    both = resolve_sources([str(tmp_path / "img0.png"), "sample:coffee"], 2, seed=0)
    assert [s.name for s in both] == [str(tmp_path / "img0.png"), "sample:coffee"]


def test_bad_sources_give_one_line_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"definitely not a jpeg")
    cases = {
        str(tmp_path / "missing.jpg"): "source not found",
        "sample:lena": "unknown sample photo",
    }
    for source, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            resolve_sources(source, 1, 0)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="cannot read image"):
        resolve_sources(str(broken), 1, 0)[0].check()
    with pytest.raises(InputError, match="cannot read image"):
        resolve_sources(str(broken), 1, 0)[0].load()
    with pytest.raises(InputError, match="holds only 1"):
        resolve_sources("sample:coffee", 2, 0)
