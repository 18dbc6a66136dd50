"""Like for like: every trained trunk is judged against the random trunk that sees the same input.

A Sobel front end (DeepCluster's default, as in its original) changes what a random trunk's features are
worth to a linear probe; comparing a Sobel-input method with a colour random trunk mixes the method's
effect with the input's. So the random trunk a group is compared with must share the trunk's input (arch,
Sobel), how the trunk is built (BiGAN's LeakyReLU encoder without conv1's BatchNorm is another random
trunk than the plain AlexNet: ``trunk_of: bigan`` on the random trials) and the whole probe protocol.
``validate`` warns when a grid lacks it; ``report`` pairs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from methods import registry
from methods.errors import InputError
from methods.trunk.arch import PLAIN
from sweep.grid import Trial, tally

__all__ = ["LIKE_FIELDS", "RANDOM", "like", "missing_baselines"]

RANDOM = "random"
# What a random trunk must share with a trained one to be its baseline: the trunk's input and build, the probe.
LIKE_FIELDS = ("arch", "sobel", "trunk_of", "probe_data", "probe_img_size", "probe_epochs", "probe_lr",
               "probe_batch_size", "probe_weight_decay", "probe_train_limit", "probe_val_limit", "probe_cache")


def like(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """The fields of a resolved config (``to_dict()``) that a like-for-like baseline shares; ``trunk_of``
    as the method whose trunk style it is, None for the plain AlexNet (so a RotNet trunk and a random one
    match whatever their ``trunk_of`` says; a config stored before the field existed: its method's style)."""
    return tuple(_trunk(config) if name == "trunk_of" else config.get(name) for name in LIKE_FIELDS)


def _trunk(config: Mapping[str, Any]) -> str | None:
    """The method whose own trunk style the config builds, None when that is the plain AlexNet."""
    name = config.get("trunk_of") or config.get("method")
    try:
        plain = registry.get_method(str(name)).trunk_style == PLAIN
    except InputError:  # a record of a method not registered here (a plugin not loaded): as before the field
        return None
    return None if plain else name


def _differences(mine: tuple[Any, ...], randoms: set[tuple[Any, ...]]) -> dict[str, Any]:
    """The fields the nearest random trunk of the grid (the fewest fields apart) would need, with their values."""
    nearest = min(randoms, key=lambda r: sum(a != b for a, b in zip(r, mine, strict=True)))
    return {n: m for n, m, r in zip(LIKE_FIELDS, mine, nearest, strict=True) if m != r}


def _yaml(value: Any) -> str:
    """A value as the spec writes it."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


def missing_baselines(trials: Sequence[Trial]) -> list[str]:
    """One line per method whose trials no random trunk of the grid matches, saying how to add one: for a
    method with Sobel input always, otherwise when the grid holds random trunks (with other settings)."""
    randoms = {like(t.config.to_dict()) for t in trials if t.config.method == RANDOM}
    lines = []
    for trial in trials:
        if registry.get_method(trial.config.method).trains_on != "patches" or trial.config.probe_epochs == 0:
            continue  # the baselines themselves, or a trunk that is not probed
        mine = like(trial.config.to_dict())
        if mine in randoms or not (randoms or trial.config.sobel):
            continue
        change = _differences(mine, randoms) if randoms else {"sobel": True}
        how = ("fixed for a sweep of the method and its random trunk, as in examples/cpu-aligned-bigan-baseline.yaml"
               if "trunk_of" in change else
               "a grid axis sobel: [true, false], the pairs not wanted excluded, as in examples/cpu-small-sobel.yaml")
        lines.append(f"{trial.config.method} (sobel: {str(trial.config.sobel).lower()}) has no random trunk "
                     f"with the same input, trunk and probe to compare it with; add random trials with "
                     f"{', '.join(f'{n}: {_yaml(v)}' for n, v in change.items())} "
                     f"({how})")
    return tally(lines)
