"""The single-image patch generator: the released recipe as one batched resampling pass on the device.

The released script (yukimasano/single_img_pretraining) makes every patch with per-image PIL calls:
initial random crop -> random-resized crop to R = int(sqrt(2) * S) -> random rotation + shear -> optional
vertical flip -> centre crop S -> colour jitter with p = 0.5. All geometric steps are affine, so here they
are composed into one 2x3 matrix per sample and the whole batch is drawn with a single ``grid_sample``;
colour jitter is one batched pass after it. Where they can, the two passes run fused, one patch at a
time in registers or cache: a Triton kernel on CUDA (``methods/patches/render_gpu.py``) and a numba loop on the
CPU (``methods/patches/render_cpu.py``), and the training stream then renders a group of batches per call. The
torch ops are the reference both are tested against, and the path for other devices, for
``mode="bicubic"``, and wherever a fused render cannot run.

Anti-aliasing: a large crop shrunk to R pixels must be low-passed as PIL's resize does. The source never
changes, so each source is stored once as a pyramid with sqrt(2) steps (built with an antialiased
resize), all levels packed in one texture atlas; each sample reads from the level whose resolution is just
above what it needs, so the remaining shrink is below sqrt(2).

The random draws of each patch (counter-based: a pure function of seed, epoch and index) are made in
``methods/patches/sampling.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from methods.patches import layout, render_cpu, render_gpu
from methods.patches.colour import colour_jitter
from methods.patches.sampling import PatchParams, PatchRecipe, sample_params

log = logging.getLogger("monosweep.patches")

__all__ = ["PatchGenerator", "PatchParams", "PatchRecipe", "frame_maps"]

_PAD = 3  # replicated border around each atlas region, wider than a bicubic footprint
_LEVEL_STEP = math.sqrt(2.0)
_CPU_CHUNK_PIXELS = 1 << 18  # output pixels per CPU chunk: keeps temporaries in cache
# Output pixels rendered per call by a stream: 768 MB of float32 patches on a GPU, 192 MB on the CPU.
_GROUP_PIXELS = {"cpu": 1 << 24, "cuda": 1 << 26}


# ---------------------------------------------------------------------------------------- geometry
def _inverse_affine(angle: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2) inverse of rotation x x-shear, torchvision's RandomAffine convention (det = 1)."""
    rot, sx = torch.deg2rad(angle), torch.deg2rad(shear)
    a = torch.cos(rot)
    b = -torch.cos(rot) * torch.tan(sx) - torch.sin(rot)
    c = torch.sin(rot)
    d = -torch.sin(rot) * torch.tan(sx) + torch.cos(rot)
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)


def _homogeneous(linear: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    n = linear.shape[0]
    m = torch.zeros(n, 3, 3, dtype=torch.float64)
    m[:, :2, :2] = linear
    m[:, :2, 2] = shift
    m[:, 2, 2] = 1.0
    return m


def _diag(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.stack([x, y], -1))


def _scale_shift(n: int, sx: float, sy: float, shift: float) -> torch.Tensor:
    """(n, 3, 3) copies of the map (x, y) -> (sx * x + shift, sy * y + shift)."""
    linear = torch.diag(torch.tensor([sx, sy], dtype=torch.float64)).expand(n, 2, 2)
    return _homogeneous(linear, torch.full((n, 2), shift, dtype=torch.float64))


def frame_maps(recipe: PatchRecipe, params: PatchParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, 3, 3) maps from output pixel coordinates (pixel centres at i + 0.5).

    Returns (to_frame, frame_to_source): output -> the R x R random-resized-crop frame (outside it the
    recipe's affine fills black), and that frame -> source pixels.
    """
    n = len(params)
    r = float(recipe.resized)
    ones = torch.ones(n, dtype=torch.float64)
    # centre crop, then undo the flips (reflections about the frame centre), then undo the affine.
    offset = float(recipe.centre_offset)
    crop = _scale_shift(n, 1.0, 1.0, offset)
    fx = torch.where(params.hflip, -ones, ones)
    fy = torch.where(params.vflip, -ones, ones)
    centre = torch.full((n, 2), r / 2, dtype=torch.float64)
    reflect = _diag(fx, fy)
    flips = _homogeneous(reflect, centre - (reflect @ centre[..., None])[..., 0])
    inv = _inverse_affine(params.angle, params.shear)
    affine = _homogeneous(inv, centre - (inv @ centre[..., None])[..., 0])
    to_frame = affine @ flips @ crop
    box = params.box
    frame_to_source = _homogeneous(_diag(box[:, 2] / r, box[:, 3] / r), box[:, :2])
    return to_frame, frame_to_source


# ---------------------------------------------------------------------------------------- pyramid atlas
@dataclass
class _Atlas:
    texture: torch.Tensor  # (1, 3, AH, AW) float32 on the device
    regions: torch.Tensor  # (sources, max_levels, 4): x, y, w, h of each level inside the texture
    levels: torch.Tensor  # (sources,) number of levels per source
    sizes: list[tuple[int, int]] = field(default_factory=list)  # level-0 (H, W) per source


def _build_atlas(images: Sequence[torch.Tensor], min_frame: int, device: torch.device) -> _Atlas:
    """Pack every source's sqrt(2)-step pyramid (antialiased bicubic, like PIL) into one texture."""
    pieces: list[tuple[int, int, torch.Tensor]] = []  # (source, level, padded image)
    counts = []
    for s, img in enumerate(images):
        h, w = img.shape[-2:]
        src = img.to(device=device, dtype=torch.float32).unsqueeze(0) / 255.0
        # Deepest level needed: a crop of the whole image shrunk to the smallest frame.
        levels = max(1, int(math.floor(2 * math.log2(max(h, w) / min_frame))) + 2)
        count = 0
        for k in range(levels):
            scale = _LEVEL_STEP**-k
            lh, lw = max(1, round(h * scale)), max(1, round(w * scale))
            if k > 0 and min(lh, lw) < 4:
                break
            level = src if k == 0 else F.interpolate(src, (lh, lw), mode="bicubic", antialias=True)
            pieces.append((s, k, F.pad(level.clamp(0.0, 1.0), (_PAD,) * 4, mode="replicate")))
            count += 1
        counts.append(count)

    # Shelf packing, tallest first.
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i][2].shape[-2])
    area = sum(p[2].shape[-1] * p[2].shape[-2] for p in pieces)
    limit = max(max(p[2].shape[-1] for p in pieces), int(math.ceil(math.sqrt(area * 1.1))))
    places: dict[int, tuple[int, int]] = {}
    x = y = shelf_h = width = 0
    for i in order:
        ph, pw = pieces[i][2].shape[-2:]
        if x + pw > limit:
            x, y, shelf_h = 0, y + shelf_h, 0
        places[i] = (x, y)
        x += pw
        shelf_h = max(shelf_h, ph)
        width = max(width, x)
    texture = torch.zeros(1, 3, y + shelf_h, width, device=device)
    regions = torch.zeros(len(images), max(counts), 4, dtype=torch.float64)
    for i, (s, k, padded) in enumerate(pieces):
        px, py = places[i]
        ph, pw = padded.shape[-2:]
        texture[:, :, py : py + ph, px : px + pw] = padded
        regions[s, k] = torch.tensor([px + _PAD, py + _PAD, pw - 2 * _PAD, ph - 2 * _PAD], dtype=torch.float64)
    return _Atlas(texture, regions, torch.tensor(counts), [tuple(img.shape[-2:]) for img in images])


# ---------------------------------------------------------------------------------------- generator
class PatchGenerator:
    """Augmented patches of resident source images, drawn in batches on ``device``.

    ``batch(epoch, start, size)`` returns patches ``start .. start+size-1`` of that epoch as a float
    tensor (size, 3, S, S) in [0, 1]; the same arguments always give the same patches.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        recipe: PatchRecipe,
        seed: int = 0,
        device: torch.device | str = "cpu",
        mode: str = "bilinear",
        fused: bool = True,
    ) -> None:
        if not images:
            raise ValueError("PatchGenerator needs at least one source image")
        self.recipe = recipe
        self.seed = seed
        self.device = torch.device(device)
        self.mode = mode
        self.atlas = _build_atlas(images, recipe.resized, self.device)
        self._fused_texture: object = None
        self.fused_render = self._fused_backend() if fused and mode == "bilinear" else None
        # Groups only for a fused render: the torch ops would hold a whole group's temporaries at once.
        self.group_pixels = _GROUP_PIXELS.get(self.device.type, 0) if self.fused_render else 0

    def _fused_backend(self) -> Callable[..., torch.Tensor] | None:
        """The fused render for this device (see the module docstring), tried once on one patch: where
        it cannot run (a GPU Triton does not support, no compiler for its launcher) the torch ops do."""
        backend = next((b for b in (render_gpu, render_cpu) if b.available(self.device)), None)
        if backend is None:
            return None
        texture = backend.prepare(self.atlas.texture)
        try:
            backend.render(texture, self.packed(self.params(0, 0, 1)).to(self.device), self.recipe.size,
                           self._empty(1))
        except Exception as error:  # noqa: BLE001 - any failure means: use the torch ops
            log.warning("fused patch render unavailable on %s (%s: %s); using torch ops",
                        self.device, type(error).__name__, error)
            return None
        self._fused_texture = texture
        return backend.render

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return self.atlas.sizes

    def params(self, epoch: int, start: int, size: int) -> PatchParams:
        index = torch.arange(start, start + size, dtype=torch.int64)
        return sample_params(self.recipe, self.sizes, self.seed, epoch, index)

    def batch(self, epoch: int, start: int, size: int) -> torch.Tensor:
        return self.render(self.params(epoch, start, size))

    def epoch_batches(self, epoch: int, batch_size: int, total: int, *, reuse: bool = False) -> Iterator[torch.Tensor]:
        """The epoch's ``total`` patches in batches (the last one may be smaller); ``reuse``: see ``batches_at``."""
        return self.batches_at(epoch, torch.arange(total), batch_size, reuse=reuse)

    def batches_at(
        self, epoch: int, indices: torch.Tensor, batch_size: int, *, reuse: bool = False,
        views: torch.Tensor | None = None,
    ) -> Iterator[torch.Tensor]:
        """Patches number ``indices`` of ``epoch``, in that order, in batches; ``views`` (one per index, see
        ``PatchParams.view``) crop and flip them in the same resampling.

        ``reuse=True`` (the training loop) renders into one buffer that a later batch overwrites: only for
        a consumer that drops each batch before asking for the next. It also renders a group of batches
        (``group_pixels`` output pixels) per call, so the per-call cost (parameter draws on the host,
        kernel launches, waking threads) is paid per group: at 64 px this doubles the CPU's patches/s and
        is what makes them ~1M/s on a GPU. Without it every batch is a tensor of its own, to keep.
        """
        s = self.recipe.size
        per_group = max(1, self.group_pixels // (batch_size * s * s)) if reuse else 1
        buffer: torch.Tensor | None = None
        groups = indices.split(batch_size * per_group)
        group_views = views.split(batch_size * per_group) if views is not None else [None] * len(groups)
        for group, view in zip(groups, group_views, strict=True):
            params = sample_params(self.recipe, self.sizes, self.seed, epoch, group)
            params.view = view
            if reuse:
                if buffer is None:
                    buffer = self._empty(len(group))
                rendered = self.render(params, out=buffer[: len(group)])
            else:
                rendered = self.render(params)
            yield from rendered.split(batch_size)

    def _empty(self, n: int) -> torch.Tensor:
        s = self.recipe.size
        return torch.empty(n, 3, s, s, device=self.device)

    def render(self, params: PatchParams, out: torch.Tensor | None = None) -> torch.Tensor:
        """Draw the patches described by ``params``: (B, 3, S, S) float32 in [0, 1] on the device.

        The fused render if there is one; else (torch ops) one resampling pass and one colour pass over
        the batch, on the CPU chunk by chunk (cache-sized, no full-batch temporaries) over the samples
        sorted so that those needing the fill mask and those being jittered come together. ``out``, if
        given, receives every element and is returned.
        """
        device, n, s = self.device, len(params), self.recipe.size
        if out is None:
            out = self._empty(n)
        elif (out.shape != (n, 3, s, s) or out.device.type != device.type or out.dtype != torch.float32
              or not out.is_contiguous()):
            raise ValueError(f"out must be contiguous float32 {(n, 3, s, s)} on {device}, "
                             f"got {out.dtype} {tuple(out.shape)}")
        if self.fused_render is not None:
            return self.fused_render(self._fused_texture, self.packed(params).to(device), s, out)
        theta, frame, needs_mask = self._maps(params)
        theta, frame = theta.to(device, torch.float32), frame.to(device, torch.float32)
        needs_mask = needs_mask.to(device)
        jitter = params.jitter.to(device)
        factors, order = params.factors.to(device, torch.float32), params.order.to(device)
        rows_sorted = torch.argsort(jitter.long() * 2 + needs_mask.long(), stable=True)
        chunk = n if device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (s * s))
        for rows in rows_sorted.split(chunk):
            patch = self._resample(theta[rows], frame[rows] if bool(needs_mask[rows].any()) else None)
            if bool(jitter[rows].any()):
                patch = colour_jitter(patch, jitter[rows], factors[rows], order[rows])
            out.index_copy_(0, rows, patch)
        return out

    def packed(self, params: PatchParams) -> torch.Tensor:
        """(B, layout.WIDTH) float32 rows on the host: all a patch needs, for the fused renders."""
        theta, frame, needs_mask = self._maps(params)
        columns = (theta.flatten(1), frame.flatten(1), needs_mask[:, None], params.jitter[:, None],
                   params.factors, params.order)
        packed = torch.cat([c.to(torch.float32) for c in columns], dim=1)
        assert packed.shape[1] == layout.WIDTH
        return packed

    def _maps(self, params: PatchParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample (on the host, float64): output -> atlas and output -> crop-frame maps (normalised), and
        whether the recipe's black fill can show (shear can push the frame's edge into the centre crop)."""
        recipe, atlas = self.recipe, self.atlas
        n, s, r = len(params), recipe.size, float(recipe.resized)
        to_frame, frame_to_source = frame_maps(recipe, params)

        # Pyramid level: the one whose remaining shrink factor lies in [1, sqrt(2)).
        shrink = torch.sqrt(params.box[:, 2] * params.box[:, 3]) / r
        if params.view is not None:  # a view of part of the patch magnifies it: a finer level
            shrink = shrink * torch.sqrt(torch.linalg.det(params.view[:, :2, :2]).abs())
        level = torch.floor(2 * torch.log2(shrink.clamp(min=1.0)) + 1e-6).long()
        level = torch.minimum(level, atlas.levels[params.source] - 1)
        region = atlas.regions[params.source, level]
        hw = torch.tensor(atlas.sizes, dtype=torch.float64)[params.source]
        to_region = _homogeneous(_diag(region[:, 2] / hw[:, 1], region[:, 3] / hw[:, 0]), region[:, :2])

        # Compose into maps between normalised coordinates ([-1, 1], align_corners=False).
        from_unit = _scale_shift(n, s / 2.0, s / 2.0, s / 2.0)
        if params.view is not None:
            from_unit = from_unit @ params.view.to(torch.float64)
        ah, aw = atlas.texture.shape[-2:]
        to_unit_atlas = _scale_shift(n, 2.0 / aw, 2.0 / ah, -1.0)
        theta = (to_unit_atlas @ to_region @ frame_to_source @ to_frame @ from_unit)[:, :2]
        frame = (_scale_shift(n, 2.0 / r, 2.0 / r, -1.0) @ to_frame @ from_unit)[:, :2]
        corners = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
        needs_mask = ((frame @ corners.T.to(frame)).abs() > 1.0).flatten(1).any(1)
        return theta, frame, needs_mask

    def _resample(self, theta: torch.Tensor, frame: torch.Tensor | None) -> torch.Tensor:
        """One ``grid_sample`` from the atlas; outside the crop frame (if given) the fill is black."""
        s = self.recipe.size
        texture = self.atlas.texture.expand(theta.shape[0], -1, -1, -1)
        out = F.grid_sample(texture, _affine_grid(theta, s), mode=self.mode, padding_mode="border",
                            align_corners=False)
        if frame is not None:
            out.mul_((_affine_grid(frame, s).abs() <= 1.0).all(dim=-1).unsqueeze(1))
        return out.clamp_(0.0, 1.0)


def _affine_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid`` for square outputs, by broadcasting instead of a batched matmul (faster on CPU)."""
    lin = (torch.arange(size, device=theta.device, dtype=theta.dtype) * 2 + 1) / size - 1
    grid = torch.empty(theta.shape[0], size, size, 2, device=theta.device, dtype=theta.dtype)
    for c in range(2):
        along_x = theta[:, c, 0, None] * lin
        along_y = theta[:, c, 1, None] * lin + theta[:, c, 2, None]
        torch.add(along_x[:, None, :], along_y[:, :, None], out=grid[..., c])
    return grid
