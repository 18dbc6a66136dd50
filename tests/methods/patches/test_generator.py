"""The batched generator: determinism, every switch, range/device, and fidelity to the PIL recipe."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from methods.data.sources import resolve_sources
from methods.errors import InputError
from methods.patches import render_cpu
from methods.patches.augment import AUGMENTATIONS, FULL, PRESETS, parse_augment
from methods.patches.colour import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation
from methods.patches.generator import PatchGenerator
from methods.patches.layout import NEEDS_MASK
from methods.patches.sampling import PatchParams, PatchRecipe, centre_view, sample_params, training_views
from tests.support import REPO
from tests.support.pil_recipe import render_reference


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return resolve_sources("sample:astronaut", 1, 0)[0].load()


def make(image: torch.Tensor, augment: str = "full", seed: int = 0, size: int = 64) -> PatchGenerator:
    return PatchGenerator([image], PatchRecipe(size=size, steps=parse_augment(augment)), seed=seed)


def test_same_seed_same_patches_across_instances_and_batchings(astronaut: torch.Tensor) -> None:
    a = make(astronaut, seed=7).batch(epoch=3, start=10, size=16)
    restarted = make(astronaut, seed=7)
    b = torch.cat([restarted.batch(3, 10, 5), restarted.batch(3, 15, 11)])
    assert torch.equal(a, b)


def test_seed_epoch_and_index_all_change_the_patches(astronaut: torch.Tensor) -> None:
    base = make(astronaut, seed=1).batch(0, 0, 8)
    assert not torch.equal(base, make(astronaut, seed=2).batch(0, 0, 8))
    assert not torch.equal(base, make(astronaut, seed=1).batch(1, 0, 8))
    assert not torch.equal(base, make(astronaut, seed=1).batch(0, 8, 8))
    # Within a batch, patches differ from each other.
    assert (base[0] - base[1]).abs().mean() > 0.01


def test_patches_are_in_range_on_the_device_with_the_requested_shape(astronaut: torch.Tensor) -> None:
    out = make(astronaut, size=96).batch(0, 0, 12)
    assert out.shape == (12, 3, 96, 96)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(out.std()) > 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_patches_on_cuda_match_the_cpu(astronaut: torch.Tensor) -> None:
    recipe = PatchRecipe(size=64)
    gpu = PatchGenerator([astronaut], recipe, seed=3, device="cuda").batch(0, 0, 32)
    cpu = PatchGenerator([astronaut], recipe, seed=3, device="cpu").batch(0, 0, 32)
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().mean() < 2e-3


# The GPU's fused render against the torch ops, run by Triton's interpreter on the CPU (tiny size).
_FUSED_CHECK = """
import json, torch
from methods.data.sources import resolve_sources
from methods.patches.generator import PatchGenerator, PatchRecipe
from methods.patches.layout import NEEDS_MASK
from methods.patches.render_gpu import render
source = resolve_sources("sample:astronaut", 1, 0)[0].load()
gen = PatchGenerator([source], PatchRecipe(size=72), seed=4)
params = gen.params(0, 0, 12)
packed = gen.packed(params)
ours = render(gen.atlas.texture, packed, 72, torch.empty(12, 3, 72, 72))
diff = (ours - gen.render(params)).abs()
masked = int(packed[:, NEEDS_MASK].sum())
print(json.dumps({"max": diff.max().item(), "jittered": int(params.jitter.sum()), "masked": masked}))
"""


def test_fused_kernel_matches_the_torch_ops_in_the_triton_interpreter() -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", _FUSED_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["jittered"] > 0 and result["masked"] > 0  # both branches of the kernel ran
    assert result["max"] < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("size", [64, 224])
def test_fused_kernel_on_cuda_matches_the_torch_ops(astronaut: torch.Tensor, size: int) -> None:
    recipe = PatchRecipe(size=size)
    fused = PatchGenerator([astronaut], recipe, seed=3, device="cuda")
    plain = PatchGenerator([astronaut], recipe, seed=3, device="cuda", fused=False)
    assert fused.fused_render is not None and plain.fused_render is None
    a, b = fused.batch(0, 0, 256), plain.batch(0, 0, 256)
    assert torch.equal(a, fused.batch(0, 0, 256))  # deterministic
    diff = (a - b).abs()
    assert float(diff.mean()) < 1e-5
    assert float((diff > 1e-3).float().mean()) < 1e-3  # only pixels on a fill-mask edge may flip


@pytest.mark.parametrize(("size", "threads"), [(64, 1), (72, 2)])
def test_fused_cpu_render_matches_the_torch_ops(astronaut: torch.Tensor, size: int, threads: int) -> None:
    pytest.importorskip("numba")
    recipe = PatchRecipe(size=size)
    fused, plain = PatchGenerator([astronaut], recipe, seed=6), PatchGenerator([astronaut], recipe, seed=6, fused=False)
    assert fused.fused_render is not None and plain.fused_render is None
    params = fused.params(0, 0, 48)
    assert bool(params.jitter.any()) and bool(fused.packed(params)[:, NEEDS_MASK].bool().any())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = fused.render(params)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a, fused.render(params))  # the split across threads changes nothing
    diff = (a - plain.render(params)).abs()
    assert float(diff.mean()) < 1e-5
    assert float((diff > 5e-4).float().mean()) < 1e-3  # only pixels on a fill-mask edge may flip


def test_a_fused_render_that_cannot_run_falls_back_to_the_torch_ops(
    astronaut: torch.Tensor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("no compiler for this machine")

    monkeypatch.setattr(render_cpu, "available", lambda device: True)
    monkeypatch.setattr(render_cpu, "render", broken)
    gen = make(astronaut, seed=8)
    assert gen.fused_render is None and gen.group_pixels == 0
    assert "fused patch render unavailable" in caplog.text and "no compiler" in caplog.text
    expected = PatchGenerator([astronaut], PatchRecipe(size=64), seed=8, fused=False).batch(0, 0, 6)
    assert torch.equal(gen.batch(0, 0, 6), expected)


def test_grouped_rendering_gives_the_same_batches(astronaut: torch.Tensor) -> None:
    """A stream renders several batches per call; the batches must not depend on how many."""
    one, grouped = make(astronaut, seed=2), make(astronaut, seed=2)
    one.group_pixels = 0  # one batch per call
    grouped.group_pixels = 3 * 10 * 64 * 64  # three batches of 10 per call
    for reuse in (False, True):
        a = [x.clone() for x in one.epoch_batches(1, 10, 47, reuse=reuse)]
        b = [x.clone() for x in grouped.epoch_batches(1, 10, 47, reuse=reuse)]
        assert [len(x) for x in b] == [10, 10, 10, 10, 7]
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("step", sorted(FULL))
def test_switching_off_each_step_changes_the_output(astronaut: torch.Tensor, step: str) -> None:
    full = make(astronaut, "full", seed=5).batch(0, 0, 16)
    without = make(astronaut, f"no-{step}", seed=5).batch(0, 0, 16)
    assert not torch.allclose(full, without, atol=1e-4)


@pytest.mark.parametrize("step", sorted(AUGMENTATIONS))
def test_switching_on_each_step_alone_changes_the_output(astronaut: torch.Tensor, step: str) -> None:
    none = make(astronaut, "none", seed=5).batch(0, 0, 16)
    only = make(astronaut, f"only-{step}", seed=5).batch(0, 0, 16)
    assert not torch.allclose(none, only, atol=1e-4)


def test_none_gives_plain_crops(astronaut: torch.Tensor) -> None:
    """No augmentation: every patch is the photo resized to R and centre-cropped, as PIL makes it."""
    out = make(astronaut, "none").batch(0, 0, 4)
    assert torch.equal(out[0], out[3])
    recipe = PatchRecipe(size=64, steps=frozenset())
    pil = Image.fromarray(astronaut.permute(1, 2, 0).numpy())
    plain = TF.to_tensor(TF.center_crop(pil.resize((recipe.resized,) * 2, Image.Resampling.BICUBIC), [64, 64]))
    assert float((out[0] - plain).abs().mean()) < 0.03


def test_unknown_augmentation_names_are_rejected() -> None:
    with pytest.raises(InputError, match="blur"):
        parse_augment("crop+blur")
    assert parse_augment("crop+scale") == {"crop", "scale"}
    assert PRESETS["full"] == FULL and "vflip" not in FULL


def _high_frequency(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft2(x.mean(1)).abs()
    return float(spectrum[:, 16:-16, 16:].mean())


def _reference(gen: PatchGenerator, image: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    params = gen.params(0, 0, n)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    ref = torch.stack([render_reference(pil, params, i, gen.recipe) for i in range(n)])
    return gen.render(params), ref


@pytest.mark.parametrize("augment", ["crop+scale", "full"])
def test_generator_matches_the_pil_recipe_on_a_photo(astronaut: torch.Tensor, augment: str) -> None:
    ours, ref = _reference(make(astronaut, augment, seed=1), astronaut, 48)
    assert float((ours - ref).abs().mean()) < 0.015
    assert 0.7 < _high_frequency(ours) / _high_frequency(ref) < 1.35


def test_downscaling_is_antialiased_like_pil() -> None:
    """Fine noise shrunk a lot must come out as smooth as PIL's resize makes it, not aliased."""
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 1024, 1024), dtype=np.uint8))
    gen = make(noise, "crop+scale", seed=2)
    ours, ref = _reference(gen, noise, 32)
    ratio = _high_frequency(ours) / _high_frequency(ref)
    levels = gen.atlas.levels.clone()
    gen.atlas.levels[:] = 1  # read the full-resolution source only: what skipping the pyramid would give
    aliased = _high_frequency(gen.render(gen.params(0, 0, 32))) / _high_frequency(ref)
    gen.atlas.levels[:] = levels
    assert 0.6 < ratio < 1.4
    assert aliased > 1.8 * ratio


def test_batched_colour_ops_match_torchvision() -> None:
    x = torch.rand(6, 3, 20, 20)
    factors = torch.tensor([0.6, 0.8, 1.0, 1.2, 1.4, 0.9])
    shifts = torch.tensor([-0.1, -0.05, 0.0, 0.03, 0.1, 0.5])
    for i in range(6):
        f, shift, one = float(factors[i]), float(shifts[i]), slice(i, i + 1)
        pairs = [
            (adjust_brightness(x[one], factors[one]), TF.adjust_brightness(x[i], f)),
            (adjust_contrast(x[one], factors[one]), TF.adjust_contrast(x[i], f)),
            (adjust_saturation(x[one], factors[one]), TF.adjust_saturation(x[i], f)),
            (adjust_hue(x[one], shifts[one]), TF.adjust_hue(x[i], shift)),
        ]
        for ours, theirs in pairs:
            assert torch.allclose(ours[0], theirs, atol=1e-4)


def test_several_sources_are_all_used() -> None:
    images = [s.load() for s in resolve_sources("samples", 3, seed=0)]
    gen = PatchGenerator(images, PatchRecipe(size=64), seed=0)
    params = gen.params(0, 0, 64)
    assert set(params.source.tolist()) == {0, 1, 2}
    assert gen.batch(0, 0, 64).shape == (64, 3, 64, 64)


def _spans(values: torch.Tensor, lo: float, hi: float, reach: float, eps: float = 1e-9) -> bool:
    """All values lie in [lo, hi], and both ends are reached to within ``reach``."""
    low, high = float(values.min()), float(values.max())
    return lo - eps <= low < lo + reach and hi - reach < high <= hi + eps


def _inside(inner: torch.Tensor, outer: torch.Tensor, eps: float = 1e-9) -> bool:
    """Boxes (x, y, w, h) of ``inner`` lie inside those of ``outer``."""
    starts = inner[:, :2] >= outer[:, :2] - eps
    ends = inner[:, :2] + inner[:, 2:] <= outer[:, :2] + outer[:, 2:] + eps
    return bool(starts.all() & ends.all())


def test_sampled_parameters_cover_the_released_recipe_ranges(astronaut: torch.Tensor) -> None:
    """The sampler's own draws, over many patches, against the released script's ranges. (The fidelity
    test renders these same parameters, so a wrong range would pass it.)"""
    recipe, n = PatchRecipe(size=64), 20_000
    sizes = [(480, 640), (1920, 2560), (301, 200)]
    p = sample_params(recipe, sizes, seed=11, epoch=2, index=torch.arange(n))
    hw = torch.tensor(sizes, dtype=torch.float64)[p.source]
    # Initial crop: a square of 0.5 x the short side, inside the photo.
    side = torch.floor(0.5 * hw.min(dim=1).values)
    assert torch.equal(p.base[:, 2], side) and torch.equal(p.base[:, 3], side)
    photo = torch.stack([torch.zeros(n), torch.zeros(n), hw[:, 1], hw[:, 0]], dim=1).double()
    assert _inside(p.base, photo)
    # Random-resized crop inside it: area 1/500..1 of it, aspect 3/4..4/3, both ends reached.
    assert _inside(p.box, p.base)
    area = p.box[:, 2] * p.box[:, 3] / side**2
    assert _spans(area, 1 / 500, 1.0, reach=0.1) and float(area.min()) < 0.01
    assert _spans(p.box[:, 2] / p.box[:, 3], 3 / 4, 4 / 3, reach=0.03)
    # Rotation and shear within +-30 degrees, spread over the range.
    for degrees in (p.angle, p.shear):
        assert _spans(degrees, -30.0, 30.0, reach=5.0) and abs(float(degrees.mean())) < 1.0
    # Colour jitter applied with p = 0.5 (within 4 binomial standard deviations), factors in their ranges.
    tolerance = 4 * math.sqrt(0.25 / n)
    assert abs(float(p.jitter.double().mean()) - 0.5) < tolerance
    assert abs(float(p.hflip.double().mean()) - 0.5) < tolerance and not bool(p.vflip.any())  # the full preset
    assert all(_spans(p.factors[:, k], 0.6, 1.4, reach=0.01) for k in range(3))  # brightness, contrast, saturation
    assert _spans(p.factors[:, 3], -0.1, 0.1, reach=0.001)  # hue
    assert torch.equal(p.order.sort(dim=1).values, torch.arange(4).expand(n, 4))  # a permutation of the 4 ops
    # The generator renders exactly what this sampler draws.
    gen = make(astronaut, seed=11)
    mine, theirs = gen.params(2, 100, 64), sample_params(gen.recipe, gen.sizes, 11, 2, torch.arange(100, 164))
    assert all(torch.equal(getattr(mine, f.name), getattr(theirs, f.name))
               for f in dataclasses.fields(PatchParams) if f.name != "view")  # (no view: None, a method's own)


def test_reused_output_buffer_is_opt_in_and_bit_identical(astronaut: torch.Tensor) -> None:
    gen = make(astronaut, seed=4)
    gen.group_pixels = 2 * 16 * 64 * 64  # two batches per call: groups of 32 and 8 patches

    def storage(batch: torch.Tensor) -> int:
        return batch.untyped_storage().data_ptr()

    fresh = list(gen.epoch_batches(1, 16, 40))
    assert len({storage(b) for b in fresh}) == 3  # by default every batch is a tensor of its own, to keep
    reused, pointers = [], []
    for batch in gen.epoch_batches(1, 16, 40, reuse=True):
        pointers.append(storage(batch))
        reused.append(batch.clone())
    assert len(set(pointers)) == 1 and [len(b) for b in reused] == [16, 16, 8]
    assert all(torch.equal(a, b) for a, b in zip(fresh, reused, strict=True))
    order = torch.tensor([5, 39, 0, 17, 17, 2])
    kept = [b.clone() for b in gen.batches_at(1, order, 4, reuse=True)]
    assert torch.equal(torch.cat(kept), torch.cat(fresh)[order])


@pytest.mark.parametrize("fused", [True, False])
def test_a_view_crops_and_flips_the_patch_in_the_same_resampling(astronaut: torch.Tensor, fused: bool) -> None:
    """A mirror view gives the plain patch mirrored; a centre-half view gives the plain patch's centre half
    magnified (as closely as one resampling of the source can match two); views are counter-based."""
    generator = PatchGenerator([astronaut], PatchRecipe(size=64), seed=0, fused=fused)
    index = torch.arange(8)
    (plain,) = generator.batches_at(0, index, 8)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)).expand(8, 3, 3)
    (mirrored,) = generator.batches_at(0, index, 8, views=mirror)
    assert torch.allclose(mirrored, plain.flip(-1), atol=1e-4)
    (half,) = generator.batches_at(0, index, 8, views=centre_view(8, 0.5))
    zoomed = torch.nn.functional.interpolate(plain[..., 16:48, 16:48], size=64, mode="bilinear", align_corners=False)
    assert (half - zoomed).abs().mean() < 0.03 and (half - plain).abs().mean() > 2 * (half - zoomed).abs().mean()
    views = training_views(3, 1, torch.arange(1000))
    assert torch.equal(views[10:20], training_views(3, 1, torch.arange(10, 20)))
    area = (views[:, 0, 0] * views[:, 1, 1]).abs()  # the crop's share of the patch
    assert 0.08 - 1e-9 <= float(area.min()) and float(area.max()) <= 1.0 + 1e-9 and 0.4 < float(area.mean()) < 0.65
    assert 0.4 < float((views[:, 0, 0] < 0).double().mean()) < 0.6  # flipped about half the time
