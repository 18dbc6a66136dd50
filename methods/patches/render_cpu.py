"""The patch generator's render on the CPU as one compiled loop per patch (numba): resample, mask, jitter.

Why: with torch ops every step is a pass over the whole batch in memory — ``grid_sample``, a second
affine grid for the fill mask, and ~60 elementwise passes for the jitter (the HSV hue shift alone ~40) —
so at 224 px the CPU spent ~3x longer on memory traffic than on arithmetic and the generator made only
~3x the patches of PIL. Here a patch is sampled from the pyramid atlas (``grid_sample``'s bilinear,
align_corners=False, border arithmetic), blanked outside the crop frame and clamped in one loop, and its
jitter ops then run in its own order over that patch while it is still in cache; the contrast op takes
the mean grey of the patch as it is at that point, as torchvision does.

Patches are independent, so the batch is split across ``torch.get_num_threads()`` threads (the numba
functions release the GIL): a trial's thread budget holds, no second OpenMP runtime, fork-safe.
Same semantics as ``PatchGenerator._resample`` + ``colour.colour_jitter`` (to ~1e-4, see ``_sample``; a
pixel exactly on the crop frame's edge may fall on the other side); tests/methods/patches/test_generator.py checks them.
Compiled once per machine (numba's cache: beside this file, or in numba's cache folder where that is
read-only).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; kept optional for odd platforms
    njit = None

from methods.patches.colour import GREY
from methods.patches.layout import FACTORS, FRAME, JITTER, NEEDS_MASK, ORDER, THETA

__all__ = ["available", "prepare", "render"]

_GREY = tuple(np.float32(w) for w in GREY)
_ZERO, _ONE, _SIX = np.float32(0.0), np.float32(1.0), np.float32(6.0)


def available(device: torch.device) -> bool:
    return njit is not None and device.type == "cpu"


if njit is not None:

    @njit(cache=True, inline="always")
    def _clamp01(x):  # noqa: ANN001, ANN202 - numba infers the types
        return min(max(x, _ZERO), _ONE)

    @njit(cache=True, inline="always")
    def _remainder6(x):  # noqa: ANN001, ANN202
        return x - _SIX * np.floor(x / _SIX)

    @njit(cache=True, inline="always")
    def _hsv_channel(h6, n, maxc, delta):  # noqa: ANN001, ANN202
        k = _remainder6(h6 + n)
        return maxc - _clamp01(min(k, np.float32(4.0) - k)) * delta

    @njit(cache=True, fastmath=True, error_model="numpy", boundscheck=False)
    def _sample(tex, row, out):  # noqa: ANN001, ANN202
        """Bilinear, border-clamped samples of ``tex`` (H, W, 3) into ``out`` (3, S*S); black outside the frame.

        Branch-free and with fast-math so that LLVM vectorises it (1.5x); the coordinates then round
        differently from ``grid_sample`` by ~1e-4 of a pixel value at most.
        """
        h, w = tex.shape[0], tex.shape[1]
        s = int(math.sqrt(out.shape[1]) + 0.5)
        wf, hf = np.float32(w), np.float32(h)
        half = np.float32(0.5)
        # Texel coordinates as affine functions of the normalised output coordinates (u, v).
        t = row[THETA : THETA + 6]
        ax, bx, cx = t[0] * wf * half, t[1] * wf * half, ((t[2] + _ONE) * wf - _ONE) * half
        ay, by, cy = t[3] * hf * half, t[4] * hf * half, ((t[5] + _ONE) * hf - _ONE) * half
        f = row[FRAME : FRAME + 6]
        mask = row[NEEDS_MASK] != _ZERO
        for i in range(s):
            v = np.float32(2 * i + 1) / np.float32(s) - _ONE
            for j in range(s):
                u = np.float32(2 * j + 1) / np.float32(s) - _ONE
                ix = min(max(ax * u + (bx * v + cx), _ZERO), wf - _ONE)
                iy = min(max(ay * u + (by * v + cy), _ZERO), hf - _ONE)
                x0, y0 = int(ix), int(iy)  # ix, iy >= 0: truncation is floor
                dx, dy = ix - np.float32(x0), iy - np.float32(y0)
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                fx, fy = f[0] * u + (f[1] * v + f[2]), f[3] * u + (f[4] * v + f[5])
                keep = _ONE if (not mask) or (abs(fx) <= _ONE and abs(fy) <= _ONE) else _ZERO
                k = i * s + j
                for c in range(3):
                    top = tex[y0, x0, c] * (_ONE - dx) + tex[y0, x1, c] * dx
                    bottom = tex[y1, x0, c] * (_ONE - dx) + tex[y1, x1, c] * dx
                    out[c, k] = _clamp01((top * (_ONE - dy) + bottom * dy) * keep)

    @njit(cache=True)
    def _jitter(img, row):  # noqa: ANN001, ANN202
        """The patch's four jitter ops in its order, in place on ``img`` (3, S*S)."""
        r, g, b = img[0], img[1], img[2]
        hw = img.shape[1]
        for pos in range(4):
            op = int(row[ORDER + pos])
            factor = row[FACTORS + op]
            if op == 3:  # hue: through HSV and back, in sixths of a turn
                shift6 = _SIX * factor
                for j in range(hw):
                    rr, gg, bb = r[j], g[j], b[j]
                    maxc = max(max(rr, gg), bb)
                    delta = maxc - min(min(rr, gg), bb)
                    if rr >= gg and rr >= bb:
                        num, sector = gg - bb, _ZERO
                    elif gg >= bb:
                        num, sector = bb - rr, np.float32(2.0)
                    else:
                        num, sector = rr - gg, np.float32(4.0)
                    h6 = _remainder6(num / max(delta, np.float32(1e-12)) + (sector + shift6))
                    r[j] = _hsv_channel(h6, np.float32(5.0), maxc, delta)
                    g[j] = _hsv_channel(h6, np.float32(3.0), maxc, delta)
                    b[j] = _hsv_channel(h6, _ONE, maxc, delta)
                continue
            # brightness, contrast, saturation: clamp(a * x + c * grey + bias), as colour_jitter.
            c = _ONE - factor if op == 2 else _ZERO
            bias = _ZERO
            if op == 1:
                total = 0.0
                for j in range(hw):
                    total += _GREY[0] * r[j] + _GREY[1] * g[j] + _GREY[2] * b[j]
                bias = (_ONE - factor) * np.float32(total / hw)
            for j in range(hw):
                shift = c * (_GREY[0] * r[j] + _GREY[1] * g[j] + _GREY[2] * b[j]) + bias
                r[j] = _clamp01(r[j] * factor + shift)
                g[j] = _clamp01(g[j] * factor + shift)
                b[j] = _clamp01(b[j] * factor + shift)

    @njit(cache=True, nogil=True)
    def _render_every(tex, rows, out, first, step):  # noqa: ANN001, ANN202
        """Patches first, first + step, ...: interleaved, so jittered and plain ones spread over threads."""
        for n in range(first, rows.shape[0], step):
            _sample(tex, rows[n], out[n])
            if rows[n, JITTER] != _ZERO:
                _jitter(out[n], rows[n])


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _threads(n: int) -> concurrent.futures.ThreadPoolExecutor:
    """A pool of ``n`` threads, rebuilt only when torch's thread count changes."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != n:  # type: ignore[attr-defined]
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="monosweep-render")
        return _pool


def prepare(texture: torch.Tensor) -> np.ndarray:
    """The atlas (1, 3, H, W) as (H, W, 3): a texel's three channels share a cache line."""
    return np.ascontiguousarray(texture[0].permute(1, 2, 0).numpy())


def render(tex: np.ndarray, packed: torch.Tensor, size: int, out: torch.Tensor) -> torch.Tensor:
    """Render ``packed`` (B, layout.WIDTH) float32 rows into ``out`` (B, 3, size, size) float32."""
    n = packed.shape[0]
    rows = packed.contiguous().numpy()
    flat = out.view(n, 3, size * size).numpy()  # a view: ``out`` must be contiguous
    threads = torch.get_num_threads()
    tasks = max(1, min(threads, n))
    if tasks == 1:
        _render_every(tex, rows, flat, 0, 1)
    else:
        list(_threads(threads).map(lambda first: _render_every(tex, rows, flat, first, tasks), range(tasks)))
    return out
