"""The row of float32 values each fused render reads per patch (``PatchGenerator.packed`` writes it).

One row per patch, so a batch's parameters reach the kernel in one copy: the output -> atlas map and the
output -> crop-frame map (2x3 each, normalised coordinates), whether the black fill can show, whether
the patch is jittered, its four jitter factors (brightness, contrast, saturation, hue shift) and the
order of the four ops.
"""

THETA, FRAME, NEEDS_MASK, JITTER, FACTORS, ORDER = 0, 6, 12, 13, 14, 18
WIDTH = 22
