"""DeepCluster (Caron et al. 2018): cluster the features, train on the clusters as labels, repeat.

Every ``reassign`` epochs (the original's ``--reassign``; 1 by default, as there), as
facebookresearch/deepcluster does: features of the round's patches from the current network (eval mode;
the output of the FC layers before the top layer, with their last ReLU left out as ``main.py`` does
before ``compute_features``) -> PCA to ``pca_dim`` with whitening -> L2 normalisation -> k-means with
``clusters`` centroids -> pseudo-labels and a freshly initialised top layer, kept until the next
clustering. Every epoch: a sample of ``patches_per_epoch`` images drawn uniformly over the non-empty
clusters -> SGD (lr 0.05, momentum 0.9, weight decay 1e-5; the top layer has its own SGD without
momentum, recreated with it). Sobel front end on by default, as in the original ``main.sh``.

Scaled down, what the method depends on is the SGD steps between re-clusterings (the original: ~5,000,
a fresh top layer needs hundreds to learn the new partition) and the patches per cluster (~128 there):
``reassign`` sets the first, ``clusters`` against the patches of a clustering the second. PCA must reduce:
whitening every dimension of the clustered features amplifies the weakest ones as much as the strongest (the
original keeps 256 of 4,096). ``warnings`` says when a config breaks one of these.

Patches: a round of ``reassign`` epochs clusters ``reassign x patches_per_epoch`` fresh patches (indices
0.. of the generator at the round's first epoch) and its epochs draw their training patches from them
(``patches_per_epoch`` an epoch, uniformly over the clusters as the original's sampler, so at reassign 20
about a third of a round's patches are never drawn), so a trial clusters ``epochs x patches_per_epoch``
distinct patches, as many as RotNet and BiGAN train on. A checkpoint of the earlier fixed set is refused. As in the original, the clustering pass sees each patch's
centre view (224 of 256: its Resize + CenterCrop) and every training draw a RandomResizedCrop (area
0.08-1, aspect 3/4-4/3) and a random flip of it (its ``clustering.py``; "each augmented version of an
image belongs to the cluster of its center crop"), composed into the patch's one resampling.

The NMI between consecutive clusterings needs the same images labelled twice: a fixed anchor set (the first
``anchor_count`` patches of epoch 0, part of the first round) is assigned to each clustering's nearest
centroid in its PCA space, and the NMI is taken on those labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from methods._lazy import lazy
from methods.errors import InputError
from methods.method import Method
from methods.optim import sgd
from methods.patches.sampling import centre_view, training_views
from methods.pretext._kmeans import kmeans, l2_normalise, nearest, nmi, pca_fit
from methods.registry import register
from methods.trial.config import MethodOptions, ResolvedConfig, TrainingDefaults, check_field
from methods.trunk.arch import init_weights, pool5_dim

if TYPE_CHECKING:
    from methods.trial.context import TrialContext
    from methods.trunk.alexnet import AlexNet

torch, nn = lazy("torch"), lazy("torch.nn")

__all__ = ["DeepCluster", "DeepClusterOptions", "uniform_over_clusters"]

# Below these a scaled-down run no longer keeps what the method depends on: faiss' own threshold for points
# per centroid, and the steps after which a fresh top layer on frozen features reached 36 % pseudo-label
# accuracy at cpu-small scale (0.9 % after 16, 4 % after 64; chance 1 %).
MIN_PATCHES_PER_CLUSTER, MIN_STEPS_PER_CLUSTERING = 39, 300
PATCH_PROTOCOL = "fresh-per-round"  # in checkpoints: what the labels of a round index (see load_state_dict)
CLUSTERED_FRACTION = 224 / 256  # the clustering pass's view: Resize(256) + CenterCrop(224) in the original

log = logging.getLogger("monosweep.trial")


def uniform_over_clusters(labels: torch.Tensor, total: int, generator: torch.Generator) -> torch.Tensor:
    """``total`` indices with every non-empty cluster equally represented (DeepCluster's
    UnifLabelSampler: each cluster gets ~total/k_nonempty draws, with replacement when it is small)."""
    labels = labels.cpu()
    clusters = [torch.nonzero(labels == c).squeeze(1) for c in torch.unique(labels).tolist()]
    per = total // len(clusters) + 1
    picks = []
    for members in clusters:
        replace = members.numel() < per
        if replace:
            chosen = members[torch.randint(members.numel(), (per,), generator=generator)]
        else:
            chosen = members[torch.randperm(members.numel(), generator=generator)[:per]]
        picks.append(chosen)
    everything = torch.cat(picks)
    return everything[torch.randperm(everything.numel(), generator=generator)][:total]


class DeepClusterOptions(MethodOptions):
    clusters: int = Field(10_000, description="DeepCluster: k of k-means (default 10,000)")
    pca_dim: int = Field(256, description="DeepCluster: PCA-whitened dimensions clustered (default 256)")
    kmeans_iters: int = Field(20, description="DeepCluster: Lloyd iterations per clustering (default 20)")
    reassign: int = Field(1, description="DeepCluster: epochs between re-clusterings (the original's --reassign, "
                                         "default 1); keep hundreds of SGD steps between them")

    _clusters = check_field("clusters", ok=lambda v: v >= 2, says="{name}={value} is too small")
    _counts = check_field("pca_dim", "kmeans_iters", "reassign", ok=lambda v: v >= 1,
                          says="{name}={value} is too small")


@register
class DeepCluster(Method[DeepClusterOptions]):
    """DeepCluster: k-means on the network's features gives the labels it trains on, every ``reassign`` epochs."""

    name = "deepcluster"
    Options = DeepClusterOptions
    defaults = TrainingDefaults(epochs=200, batch_size=256, lr=0.05, momentum=0.9, weight_decay=1e-5, sobel=True)
    passes_per_patch = 1.0 + 1 / 3  # training, plus a feature pass for k-means (``passes`` adds the anchors)

    @classmethod
    def passes(cls, cfg: ResolvedConfig) -> float:
        """A training pass per patch, plus the forward pass (1/3) over each patch once when its round is
        clustered and over the NMI anchors at every later clustering."""
        options = cast(DeepClusterOptions, cfg.options)
        if cfg.epochs <= 0:
            return cls.passes_per_patch
        rounds = -(-cfg.epochs // options.reassign)
        anchors = (rounds - 1) * cls.anchor_count(cfg) / (cfg.epochs * cfg.patches_per_epoch)
        return 1.0 + (1.0 + anchors) / 3

    @staticmethod
    def round_patches(cfg: ResolvedConfig, start: int) -> int:
        """Patches clustered by the round that starts at epoch ``start`` (the last round may be short)."""
        reassign = cast(DeepClusterOptions, cfg.options).reassign
        return max(1, min(reassign, cfg.epochs - start)) * cfg.patches_per_epoch

    @classmethod
    def smallest_round(cls, cfg: ResolvedConfig) -> int:
        """Patches of the trial's smallest clustering: its last round's."""
        reassign = cast(DeepClusterOptions, cfg.options).reassign
        return cls.round_patches(cfg, max(0, cfg.epochs - 1) // reassign * reassign)

    @classmethod
    def anchor_count(cls, cfg: ResolvedConfig) -> int:
        """NMI anchors: as many patches as k-means itself wants (faiss' points per centroid), at most the first
        round's. With few points per cluster the NMI of two unrelated labelings is far from 0 (1,024 points in
        160 clusters: ~0.6), hence also ``nmi_chance``."""
        clusters = cast(DeepClusterOptions, cfg.options).clusters
        return min(cls.round_patches(cfg, 0), MIN_PATCHES_PER_CLUSTER * clusters)

    @staticmethod
    def clustered_dim(cfg: ResolvedConfig) -> int:
        """Width of the features k-means sees: the classifier's fc7, or pool5 without a classifier."""
        return cfg.head_hidden if cfg.head_hidden > 0 else pool5_dim(cfg.arch, cfg.img_size)

    @classmethod
    def check_config(cls, cfg: ResolvedConfig) -> None:
        options = cast(DeepClusterOptions, cfg.options)
        smallest = cls.smallest_round(cfg)
        if options.clusters > smallest:
            raise InputError(f"clusters={options.clusters} exceeds the {smallest} patches of the smallest clustering "
                             f"({smallest // cfg.patches_per_epoch} epoch(s) x patches_per_epoch="
                             f"{cfg.patches_per_epoch}): k-means needs at least k patches; lower clusters or raise "
                             "patches_per_epoch")

    @classmethod
    def warnings(cls, cfg: ResolvedConfig) -> list[str]:
        options, said = cast(DeepClusterOptions, cfg.options), []
        width = cls.clustered_dim(cfg)
        if options.pca_dim >= width:
            where = f"fc7, head_hidden={cfg.head_hidden}" if cfg.head_hidden else \
                f"pool5 of the {cfg.arch} trunk at {cfg.img_size} px, head_hidden=0"
            said.append(f"pca_dim={options.pca_dim} does not reduce the {width} dims it clusters ({where}): "
                        f"whitening all of them amplifies the noise as much as the signal; set pca_dim to at most "
                        f"{width // 2} (the original keeps 256 of 4096) or a wider head_hidden")
        clustered = cls.smallest_round(cfg)
        per_cluster = clustered / options.clusters
        if per_cluster < MIN_PATCHES_PER_CLUSTER:
            said.append(f"clusters={options.clusters} leaves {per_cluster:.0f} of the {clustered} patches of a "
                        f"clustering per cluster (faiss warns below {MIN_PATCHES_PER_CLUSTER}; the original has ~128):"
                        f" set clusters to at most {max(2, clustered // MIN_PATCHES_PER_CLUSTER)}, or raise "
                        "patches_per_epoch or reassign")
        steps = options.reassign * -(-cfg.patches_per_epoch // cfg.batch_size)
        if cfg.epochs > options.reassign and steps < MIN_STEPS_PER_CLUSTERING:
            said.append(f"it re-clusters every {steps} SGD steps (reassign={options.reassign} x "
                        f"{cfg.patches_per_epoch}/{cfg.batch_size}): a fresh top layer needs hundreds of steps "
                        f"to learn a partition (the original: ~5,000); set reassign to at least "
                        f"{-(-MIN_STEPS_PER_CLUSTERING * cfg.batch_size // cfg.patches_per_epoch)}")
        return said

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        super().__init__(trunk, ctx)
        cfg = self.cfg
        dim, hidden = trunk.output_dim(cfg.img_size), cfg.head_hidden
        layers: list[nn.Module] = []
        if hidden > 0:  # DeepCluster's AlexNet classifier, without its top layer
            layers = [nn.Dropout(0.5), nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                      nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        self.classifier = nn.Sequential(*layers).to(ctx.device)
        init_weights(self.classifier)
        self.feature_dim = self.clustered_dim(cfg)
        self.optimizer = sgd([trunk, self.classifier], cfg.lr, cfg.momentum, cfg.weight_decay)
        self.previous: torch.Tensor | None = None  # the last clustering's labels of the NMI anchors
        self.labels: torch.Tensor | None = None  # pseudo-labels of this round's patches (a round: `reassign` epochs)
        self._epoch: dict[str, float] = {}

    # ------------------------------------------------------------------ clustering
    def cluster_head(self) -> nn.Module:
        """The classifier without its final ReLU: the original clusters pre-activation fc7 features (its
        ``main.py`` drops that ReLU before ``compute_features`` and appends it again for training), so PCA
        sees signed values instead of a half-rectified, partly zero code. Shares the classifier's modules."""
        layers = list(self.classifier)
        if layers and isinstance(layers[-1], nn.ReLU):
            return nn.Sequential(*layers[:-1])
        return self.classifier

    def _features(self, epoch: int, count: int) -> torch.Tensor:
        """The cluster head's eval-mode features of patches 0..count-1 of ``epoch``, each its centre view."""
        self.trunk.eval()
        self.classifier.eval()
        head = self.cluster_head()
        parts = []
        # bf16 on a GPU: 1.28M x 4096 features are 10 GB instead of 21 GB (PCA accumulates in float64).
        dtype = torch.bfloat16 if self.ctx.cuda else torch.float32
        with torch.inference_mode(), self.ctx.autocast():
            for x in self.patch_batches(epoch, torch.arange(count), centre_view(count, CLUSTERED_FRACTION)):
                parts.append(head(self.trunk(self.ctx.prepare(x))).to(dtype))
        self.trunk.train()
        self.classifier.train()
        return torch.cat(parts)

    def _round_start(self, epoch: int) -> int:
        return epoch - epoch % self.options.reassign

    def start_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        if self.labels is None or epoch == self._round_start(epoch):
            self._recluster(self._round_start(epoch))
        else:
            self._epoch = {"clusters": float(torch.unique(self.labels).numel())}  # (this round's, again)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        assert self.labels is not None  # (set by _recluster)
        self.order = uniform_over_clusters(self.labels, cfg.patches_per_epoch, generator)

    def _recluster(self, start: int) -> None:
        """Cluster the patches of the round that starts at epoch ``start``; label the NMI anchors."""
        cfg, options = self.cfg, self.options
        t0 = time.perf_counter()
        features = self._features(start, self.round_patches(cfg, start))
        whitening = pca_fit(features, options.pca_dim)
        features = l2_normalise(whitening(features))
        t1 = time.perf_counter()
        result = kmeans(features, options.clusters, options.kmeans_iters, seed=cfg.seed * 1_000_003 + start)
        self.labels = result.labels
        t2 = time.perf_counter()
        anchors = self.anchor_count(cfg)
        if start == 0:  # the anchors are the first patches of the first round
            anchor_labels = result.labels[:anchors]
        else:
            anchor_labels = nearest(l2_normalise(whitening(self._features(0, anchors))), result.centroids)
        t3 = time.perf_counter()
        nonempty = int(torch.unique(result.labels).numel())
        self._epoch = {"clusters": float(nonempty), "kmeans_seconds": t2 - t1,
                       "features_seconds": (t1 - t0) + (t3 - t2)}
        if self.previous is not None and self.previous.shape == anchor_labels.shape:
            self._epoch["nmi"] = nmi(anchor_labels, self.previous)
            # The same labelings unpaired: what the NMI of unrelated partitions of these anchors is.
            shuffle = torch.randperm(len(anchor_labels), generator=torch.Generator().manual_seed(cfg.seed + start))
            self._epoch["nmi_chance"] = nmi(anchor_labels.cpu()[shuffle], self.previous)
        self.previous = anchor_labels.cpu()
        log.info("epoch %d: %d non-empty clusters of %d (features %.1fs, k-means %.1fs)", start + 1, nonempty,
                 options.clusters, (t1 - t0) + (t3 - t2), t2 - t1)
        self._new_top_layer()

    def _new_top_layer(self) -> None:
        cfg = self.cfg
        self.top_layer = nn.Linear(self.feature_dim, self.options.clusters).to(self.ctx.device)
        init_weights(self.top_layer)
        self.top_optimizer = torch.optim.SGD(self.top_layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def epoch_metrics(self) -> dict[str, float]:
        return dict(self._epoch)

    # ------------------------------------------------------------------ training
    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        assert self.labels is not None  # (set by start_epoch)
        labels = self.labels.to(self.ctx.device)
        views = training_views(cfg.seed, epoch, torch.arange(len(self.order)))  # a crop + flip per draw
        positions = torch.arange(len(self.order)).split(cfg.batch_size)
        patches = self.patch_batches(self._round_start(epoch), self.order, views)  # the round's patches
        for pos, x in zip(positions, patches, strict=True):
            yield x, labels[self.order[pos].to(labels.device)]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        with self.ctx.autocast():
            logits = self.top_layer(self.classifier(self.trunk(self.ctx.prepare(x)))).float()
        loss = nn.functional.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.top_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.top_optimizer.step()
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}

    # ------------------------------------------------------------------ checkpoints
    def _stateful(self) -> dict[str, Any]:
        # The top layer and its optimiser belong to the round, saved with its labels (below) when one spans epochs.
        return {k: v for k, v in super()._stateful().items() if k not in ("top_layer", "top_optimizer")}

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "previous": self.previous, "patches": PATCH_PROTOCOL}
        if self.options.reassign > 1 and self.labels is not None:  # a later epoch may continue this round
            state["round"] = {"labels": self.labels.cpu(), "top_layer": self.top_layer.state_dict(),
                              "top_optimizer": self.top_optimizer.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("patches") != PATCH_PROTOCOL:  # its labels index patches this code no longer draws
            raise InputError("this DeepCluster checkpoint was written by a version that clustered one fixed set of "
                             "patches; it cannot continue on fresh patches per round: run the trial again from "
                             "the start (monosweep rerun --where id=ID)")
        super().load_state_dict(state)
        self.previous = state.get("previous")
        round_state = state.get("round")
        if round_state is not None:
            self.labels = round_state["labels"]
            self._new_top_layer()
            self.top_layer.load_state_dict(round_state["top_layer"])
            self.top_optimizer.load_state_dict(round_state["top_optimizer"])
