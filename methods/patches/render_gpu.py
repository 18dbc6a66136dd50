"""The patch generator's render on the GPU as one Triton kernel: resample, fill mask and colour jitter fused.

Why: on a GPU the torch path is launch-bound, not memory-bound. It runs ~100 small kernels per batch
(``grid_sample``, the fill mask, four jitter positions, the HSV hue shift's ~40 elementwise ops), so a
64 px batch of 256 costs ~5 ms while its pixels take microseconds to write. Here one program per patch
samples the pyramid atlas bilinearly (``grid_sample``'s align_corners=False / border arithmetic), blanks
what falls outside the crop frame, and applies that patch's jitter ops in its own order, in registers;
the output is written once. Contrast needs the patch's mean grey *after* the ops before it, so a patch
whose jitter is on first runs the same pixels once for that mean (recomputed, not stored: the atlas
reads hit the cache). One program per patch, summing in a fixed order, keeps the result deterministic.

Same semantics as ``PatchGenerator._resample`` + ``colour.colour_jitter`` (checked against each other on CUDA
by tests/methods/patches/test_generator.py); bilinear only.
"""

from __future__ import annotations

import torch

try:  # Triton ships with CUDA builds of torch; without it the generator keeps the torch path.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

from methods.patches.colour import GREY
from methods.patches.layout import FACTORS, FRAME, JITTER, NEEDS_MASK, ORDER, THETA, WIDTH

__all__ = ["available", "prepare", "render"]

_BLOCK = 1024


def available(device: torch.device) -> bool:
    return triton is not None and device.type == "cuda"


if triton is not None:

    @triton.jit
    def _grey(r, g, b):
        return GREY_R * r + GREY_G * g + GREY_B * b

    @triton.jit
    def _remainder6(x):
        return x - 6.0 * tl.floor(x / 6.0)

    @triton.jit
    def _hue(r, g, b, shift):
        maxc = tl.maximum(tl.maximum(r, g), b)
        delta = maxc - tl.minimum(tl.minimum(r, g), b)
        r_max = (r >= g) & (r >= b)
        g_max = (~r_max) & (g >= b)
        num = tl.where(r_max, g - b, tl.where(g_max, b - r, r - g))
        sector = tl.where(r_max, 0.0, tl.where(g_max, 2.0, 4.0)) + 6.0 * shift
        h6 = _remainder6(num / tl.maximum(delta, 1e-12) + sector)
        k = _remainder6(h6 + 5.0)
        r2 = maxc - tl.minimum(tl.maximum(tl.minimum(k, 4.0 - k), 0.0), 1.0) * delta
        k = _remainder6(h6 + 3.0)
        g2 = maxc - tl.minimum(tl.maximum(tl.minimum(k, 4.0 - k), 0.0), 1.0) * delta
        k = _remainder6(h6 + 1.0)
        b2 = maxc - tl.minimum(tl.maximum(tl.minimum(k, 4.0 - k), 0.0), 1.0) * delta
        return r2, g2, b2

    @triton.jit
    def _clamp01(x):
        return tl.minimum(tl.maximum(x, 0.0), 1.0)

    @triton.jit
    def _affine(m_ptr, u, v):
        """A 2x3 map at normalised output coordinates, summed as ``_affine_grid`` does."""
        x = tl.load(m_ptr + 0) * u + (tl.load(m_ptr + 1) * v + tl.load(m_ptr + 2))
        y = tl.load(m_ptr + 3) * u + (tl.load(m_ptr + 4) * v + tl.load(m_ptr + 5))
        return x, y

    @triton.jit
    def _bilerp(ptr, i00, i01, i10, i11, w00, w01, w10, w11, valid):
        return (tl.load(ptr + i00, mask=valid, other=0.0) * w00 + tl.load(ptr + i01, mask=valid, other=0.0) * w01
                + tl.load(ptr + i10, mask=valid, other=0.0) * w10 + tl.load(ptr + i11, mask=valid, other=0.0) * w11)

    @triton.jit
    def _sample(tex_ptr, plane, tex_w, tex_h, params_ptr, offs, valid, S: tl.constexpr):
        """Bilinear, border-clamped samples of the atlas at output pixels ``offs``, black outside the frame."""
        row = offs // S
        col = offs % S
        u = (col.to(tl.float32) * 2.0 + 1.0) / S - 1.0
        v = (row.to(tl.float32) * 2.0 + 1.0) / S - 1.0
        gx, gy = _affine(params_ptr + THETA_C, u, v)
        wf = tex_w.to(tl.float32)
        hf = tex_h.to(tl.float32)
        ix = tl.minimum(tl.maximum(((gx + 1.0) * wf - 1.0) / 2.0, 0.0), wf - 1.0)
        iy = tl.minimum(tl.maximum(((gy + 1.0) * hf - 1.0) / 2.0, 0.0), hf - 1.0)
        x0f = tl.floor(ix)
        y0f = tl.floor(iy)
        dx = ix - x0f
        dy = iy - y0f
        x0 = x0f.to(tl.int32)
        y0 = y0f.to(tl.int32)
        x1 = tl.minimum(x0 + 1, tex_w - 1)
        y1 = tl.minimum(y0 + 1, tex_h - 1)
        w00 = (1.0 - dx) * (1.0 - dy)
        w01 = dx * (1.0 - dy)
        w10 = (1.0 - dx) * dy
        w11 = dx * dy
        i00 = y0 * tex_w + x0
        i01 = y0 * tex_w + x1
        i10 = y1 * tex_w + x0
        i11 = y1 * tex_w + x1
        r = _bilerp(tex_ptr, i00, i01, i10, i11, w00, w01, w10, w11, valid)
        g = _bilerp(tex_ptr + plane, i00, i01, i10, i11, w00, w01, w10, w11, valid)
        b = _bilerp(tex_ptr + 2 * plane, i00, i01, i10, i11, w00, w01, w10, w11, valid)
        if tl.load(params_ptr + NEEDS_MASK_C) != 0.0:
            fx, fy = _affine(params_ptr + FRAME_C, u, v)
            keep = (tl.abs(fx) <= 1.0) & (tl.abs(fy) <= 1.0)
            r = tl.where(keep, r, 0.0)
            g = tl.where(keep, g, 0.0)
            b = tl.where(keep, b, 0.0)
        return _clamp01(r), _clamp01(g), _clamp01(b)

    @triton.jit
    def _jitter(r, g, b, params_ptr, mean, STATS: tl.constexpr):
        """The patch's jitter ops in its order; with STATS, only those before contrast."""
        on = tl.load(params_ptr + JITTER_C) != 0.0
        for pos in tl.static_range(4):
            op = tl.load(params_ptr + ORDER_C + pos)
            if STATS:
                on = on & (op != 1.0)
            f = tl.load(params_ptr + FACTORS_C + op.to(tl.int32))
            if on & (op != 3.0):
                # brightness, contrast, saturation: clamp(a * x + c * grey + b * mean), as colour_jitter.
                a = f
                bias = tl.where(op == 1.0, (1.0 - f) * mean, 0.0)
                c = tl.where(op == 2.0, 1.0 - f, 0.0)
                grey = _grey(r, g, b)
                shift = c * grey + bias
                r = _clamp01(r * a + shift)
                g = _clamp01(g * a + shift)
                b = _clamp01(b * a + shift)
            if on & (op == 3.0):
                r, g, b = _hue(r, g, b, f)
        return r, g, b

    @triton.jit
    def _render_kernel(tex_ptr, tex_h, tex_w, packed_ptr, out_ptr, S: tl.constexpr, BLOCK: tl.constexpr):
        n = tl.program_id(0)
        params_ptr = packed_ptr + n * WIDTH_C
        plane = tex_h * tex_w
        npix: tl.constexpr = S * S
        mean = tl.sum(tl.zeros([BLOCK], dtype=tl.float32), axis=0)
        if tl.load(params_ptr + JITTER_C) != 0.0:
            acc = tl.zeros([BLOCK], dtype=tl.float32)
            for start in range(0, npix, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                valid = offs < npix
                r, g, b = _sample(tex_ptr, plane, tex_w, tex_h, params_ptr, offs, valid, S)
                r, g, b = _jitter(r, g, b, params_ptr, 0.0, True)
                acc += tl.where(valid, _grey(r, g, b), 0.0)
            mean = tl.sum(acc, axis=0) / npix
        out = out_ptr + n.to(tl.int64) * (3 * npix)
        for start in range(0, npix, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            valid = offs < npix
            r, g, b = _sample(tex_ptr, plane, tex_w, tex_h, params_ptr, offs, valid, S)
            r, g, b = _jitter(r, g, b, params_ptr, mean, False)
            tl.store(out + offs, r, mask=valid)
            tl.store(out + npix + offs, g, mask=valid)
            tl.store(out + 2 * npix + offs, b, mask=valid)

    # The row layout as constexpr globals: the only kind of module global a Triton kernel may read.
    GREY_R, GREY_G, GREY_B = (tl.constexpr(w) for w in GREY)
    THETA_C: tl.constexpr = tl.constexpr(THETA)
    FRAME_C: tl.constexpr = tl.constexpr(FRAME)
    NEEDS_MASK_C: tl.constexpr = tl.constexpr(NEEDS_MASK)
    JITTER_C: tl.constexpr = tl.constexpr(JITTER)
    FACTORS_C: tl.constexpr = tl.constexpr(FACTORS)
    ORDER_C: tl.constexpr = tl.constexpr(ORDER)
    WIDTH_C: tl.constexpr = tl.constexpr(WIDTH)


def prepare(texture: torch.Tensor) -> torch.Tensor:
    """The atlas as the kernel reads it: (1, 3, H, W) float32, as built."""
    return texture


def render(texture: torch.Tensor, packed: torch.Tensor, size: int, out: torch.Tensor) -> torch.Tensor:
    """Render ``packed`` (B, layout.WIDTH) float32 rows into ``out`` (B, 3, size, size) float32."""
    for name, t in (("texture", texture), ("packed", packed), ("out", out)):
        if t.dtype != torch.float32 or not t.is_contiguous():  # the kernel indexes them as dense rows
            raise ValueError(f"render_gpu.render: {name} must be contiguous float32, got {t.dtype} {t.stride()}")
    n = packed.shape[0]
    if n:
        _, _, height, width = texture.shape
        _render_kernel[(n,)](texture, height, width, packed, out, S=size, BLOCK=_BLOCK)
    return out
