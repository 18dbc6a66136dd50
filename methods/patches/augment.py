"""Augmentation names and the ablation presets built from them.

The single-image recipe is a chain of switchable steps. An ``augment`` value is either a preset
(``full``, ``none``, ``no-<step>``, ``only-<step>``) or steps joined by ``+`` (``crop+scale+jitter``),
so cumulative ablations need no new code.
"""

from __future__ import annotations

from methods.errors import InputError

__all__ = ["AUGMENTATIONS", "FULL", "PRESETS", "parse_augment"]

# Each step, in the order the recipe applies it.
AUGMENTATIONS: dict[str, str] = {
    "crop": "initial random square crop of init_crop x the short side",
    "scale": "random-resized crop, area 1/500..1 of the crop, aspect 3/4..4/3",
    "rotate": "random rotation within +-degrees",
    "shear": "random x-shear within +-shear degrees",
    "hflip": "horizontal flip with p=0.5 (the methods' own loaders add it)",
    "vflip": "vertical flip with p=0.5 (off in the released recipe)",
    "jitter": "colour jitter 0.4/0.4/0.4/0.1 in random order, applied with p=0.5",
}
FULL = frozenset(AUGMENTATIONS) - {"vflip"}


def _presets() -> dict[str, frozenset[str]]:
    presets = {"full": FULL, "none": frozenset()}
    presets.update({f"no-{name}": FULL - {name} for name in sorted(FULL)})
    presets.update({f"only-{name}": frozenset({name}) for name in AUGMENTATIONS})
    return presets


PRESETS = _presets()


def parse_augment(value: str) -> frozenset[str]:
    """The set of steps an ``augment`` value switches on; one-line InputError for unknown names."""
    if value in PRESETS:
        return PRESETS[value]
    steps = [s.strip() for s in value.split("+")]
    unknown = [s for s in steps if s not in AUGMENTATIONS]
    if unknown:
        raise InputError(
            f"unknown augmentation {unknown[0]!r} in augment={value!r}; presets: "
            f"{', '.join(PRESETS)}; steps to join with '+': {', '.join(AUGMENTATIONS)}"
        )
    return frozenset(steps)
