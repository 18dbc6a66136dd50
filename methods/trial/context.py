"""What a method gets from the trial besides the trunk: config, device, and the trial's data.

Data is built lazily and once: a method that never asks for labelled data never loads it, and the
supervised baseline and the probe share a labelled set when they use the same one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch

from methods.data.folder_stream import FolderStream
from methods.data.labelled import LabelledData, load_labelled
from methods.data.sources import resolve_sources
from methods.patches.augment import parse_augment
from methods.patches.generator import PatchGenerator, PatchRecipe
from methods.provenance import digest
from methods.trial.config import ResolvedConfig

__all__ = ["PatchSource", "TrialContext"]


class PatchSource(Protocol):
    """Training images: a stream per epoch, or random access by index (a fixed data set). ``reuse``: a
    source may render every batch into one buffer, valid until the next batch is drawn."""

    def epoch_batches(self, epoch: int, batch_size: int, total: int, *, reuse: bool = False
                      ) -> Iterator[torch.Tensor]: ...

    def batches_at(self, epoch: int, indices: torch.Tensor, batch_size: int, *, reuse: bool = False
                   ) -> Iterator[torch.Tensor]: ...


@dataclass
class TrialContext:
    """The resolved config, the device, and the trial's data, each built on first use."""

    config: ResolvedConfig
    device: torch.device
    _patches: PatchSource | None = None
    _labelled: dict[tuple[str, int], LabelledData] = field(default_factory=dict)
    # The data the trial read, by what it was for, with a content digest each (methods/provenance.py).
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast on CUDA, nothing on the CPU."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Input layout for the trunk: channels_last on CUDA."""
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def patches(self) -> PatchSource:
        """The trial's training images: the patch generator, or a folder stream for num_images=0."""
        if self._patches is None:
            cfg = self.config
            if cfg.num_images == 0:
                stream = FolderStream(cfg.source, cfg.img_size, cfg.seed, self.device, cfg.workers)
                self._patches, content, chosen = stream, [str(f) for f in stream.files], cfg.source
            else:
                sources = resolve_sources(cfg.sources, cfg.num_images, cfg.seed)
                images = [s.load() for s in sources]
                recipe = PatchRecipe(size=cfg.img_size, steps=parse_augment(cfg.augment))
                self._patches = PatchGenerator(images, recipe, seed=cfg.seed, device=self.device)
                content = [x for s, image in zip(sources, images, strict=True) for x in (s.name, image)]
                chosen = ", ".join(s.name for s in sources)
            self.inputs["training"] = {"name": cfg.source, "digest": digest(content), "source": chosen}
        return self._patches

    def labelled(self, spec: str, size: int) -> LabelledData:
        key = (spec, size)
        if key not in self._labelled:
            cfg = self.config
            data = load_labelled(spec, size, cfg.probe_train_limit, cfg.probe_val_limit, cfg.seed)
            self._labelled[key] = data
            role = "probe" if spec == cfg.probe_data else "supervised"
            self.inputs[role] = {"name": spec, "digest": data.digest(), "source": data.name,
                                 "classes": str(data.num_classes)}
        return self._labelled[key]
