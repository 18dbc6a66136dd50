"""PCA whitening, k-means and NMI in PyTorch, on whatever device the features live on.

DeepCluster's clustering step without faiss: PCA to ``dim`` components scaled by eigenvalue^-1/2
(faiss' ``PCAMatrix(eigen_power=-0.5)``), L2 normalisation, then Lloyd's k-means with faiss' defaults
(random points as initial centroids, ``niter`` iterations, empty clusters re-seeded by splitting a big
one). Distances are computed in row chunks, so 1.28M x 256 points with k = 10,000 fit on one GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods._lazy import lazy

torch = lazy("torch")

__all__ = ["KMeansResult", "Whitening", "kmeans", "l2_normalise", "nearest", "nmi", "pca_fit", "pca_whiten"]

_SPLIT_EPS = 1.0 / 1024.0  # faiss' relative perturbation when an empty cluster takes half of a big one


@dataclass
class Whitening:
    """A fitted PCA whitening: ``(x - mean) @ projection`` gives ``dim`` components of unit variance. Kept
    as a map so that points it was not fitted on (DeepCluster's NMI anchors) land in the same space."""

    mean: torch.Tensor  # (D,) float32
    projection: torch.Tensor  # (D, dim) float32

    def __call__(self, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        return torch.cat([(part.float() - self.mean) @ self.projection for part in x.split(chunk)])


def pca_fit(x: torch.Tensor, dim: int, chunk: int = 65536) -> Whitening:
    """The whitening onto the top ``dim`` principal components of ``x`` (N, D), each scaled to unit variance."""
    n, d = x.shape
    dim = min(dim, d)
    mean = torch.zeros(d, dtype=torch.float64, device=x.device)
    cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    for part in x.split(chunk):
        mean += part.double().sum(0)
    mean /= n
    for part in x.split(chunk):
        centred = part.double() - mean
        cov += centred.T @ centred
    cov /= max(n - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    top = eigenvalues.flip(0)[:dim].clamp(min=1e-12 * float(eigenvalues.max().clamp(min=1e-30)))
    projection = (eigenvectors.flip(1)[:, :dim] / top.sqrt()).to(torch.float32)
    return Whitening(mean.to(torch.float32), projection)


def pca_whiten(x: torch.Tensor, dim: int, chunk: int = 65536) -> torch.Tensor:
    """Project ``x`` (N, D) on its top ``dim`` principal components, each scaled to unit variance."""
    return pca_fit(x, dim, chunk)(x, chunk)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row and the squared distance to it, chunk by chunk."""
    c_norm = (centroids * centroids).sum(1)
    labels, dists = [], []
    for part in x.split(chunk):
        scores = torch.addmm(c_norm[None, :], part, centroids.T, alpha=-2.0)  # ||c||^2 - 2 x.c
        best, label = scores.min(dim=1)
        labels.append(label)
        dists.append(best + (part * part).sum(1))
    return torch.cat(labels), torch.cat(dists)


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The nearest centroid of every row of ``x``."""
    return _assign(x.float(), centroids.float(), chunk)[0]


def _split_empty(centroids: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> int:
    """Re-seed each empty centroid from a cluster drawn with probability ~ (size - 1), as faiss does:
    copy its centroid, perturb the two copies symmetrically, and let them share its points."""
    empty = torch.nonzero(counts == 0).squeeze(1).tolist()
    sign = torch.ones(centroids.shape[1], device=centroids.device)
    sign[1::2] = -1.0
    for ci in empty:
        weights = (counts - 1).clamp(min=0).double().cpu()
        if float(weights.sum()) <= 0:
            break
        cj = int(torch.multinomial(weights, 1, generator=generator))
        centroids[ci] = centroids[cj] * (1.0 + sign * _SPLIT_EPS)
        centroids[cj] = centroids[cj] * (1.0 - sign * _SPLIT_EPS)
        counts[ci] = counts[cj] // 2
        counts[cj] -= counts[ci]
    return len(empty)


@dataclass
class KMeansResult:
    labels: torch.Tensor  # (N,) int64
    centroids: torch.Tensor  # (k, d)
    inertia: float  # mean squared distance to the assigned centroid
    splits: int  # empty clusters re-seeded over all iterations


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0, chunk: int | None = None,
           init: torch.Tensor | None = None) -> KMeansResult:
    """Lloyd's k-means of ``x`` (N, d) float32 into ``k`` clusters on x's device.

    Initial centroids: ``init`` if given, else ``k`` distinct random points (faiss' default, which
    DeepCluster uses), drawn by ``seed``.
    """
    n, d = x.shape
    if k > n:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    x = x.float()
    if chunk is None:  # the (chunk, k) distance block: ~256 MB on a GPU, cache-sized on a CPU
        chunk = max(256, (1 << (26 if x.device.type == "cuda" else 20)) // max(k, 1))
    generator = torch.Generator().manual_seed(seed)
    if init is not None:
        centroids = init.to(x.device, torch.float32).clone()
    else:
        centroids = x[torch.randperm(n, generator=generator)[:k].to(x.device)].clone()
    splits = 0
    for _ in range(iters):
        labels, _ = _assign(x, centroids, chunk)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros(k, d, device=x.device, dtype=torch.float32).index_add_(0, labels, x)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None].float()
        splits += _split_empty(centroids, counts, generator)
    labels, dists = _assign(x, centroids, chunk)
    return KMeansResult(labels, centroids, float(dists.mean()), splits)


def _entropy(counts: torch.Tensor) -> float:
    p = counts[counts > 0].double() / counts.sum()
    return float(-(p * p.log()).sum())


def nmi(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised mutual information of two labelings, 2 I(a; b) / (H(a) + H(b)) (scikit-learn's default)."""
    a, b = a.long().cpu(), b.long().cpu()
    _, a = torch.unique(a, return_inverse=True)
    _, b = torch.unique(b, return_inverse=True)
    n = a.numel()
    pairs, joint = torch.unique(a * (int(b.max()) + 1) + b, return_counts=True)
    count_a, count_b = torch.bincount(a), torch.bincount(b)
    ha, hb = _entropy(count_a), _entropy(count_b)
    if ha == 0.0 and hb == 0.0:
        return 1.0
    pa = count_a[pairs // (int(b.max()) + 1)].double()
    pb = count_b[pairs % (int(b.max()) + 1)].double()
    joint = joint.double()
    mutual = float((joint / n * (joint * n / (pa * pb)).log()).sum())
    return max(0.0, min(1.0, 2.0 * mutual / (ha + hb))) if (ha + hb) > 0 else 0.0


