"""DeepCluster's clustering step: k-means, PCA whitening, NMI and the uniform sampler."""

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from methods.pretext._kmeans import kmeans, l2_normalise, nmi, pca_whiten
from methods.pretext.deepcluster import uniform_over_clusters


def test_kmeans_matches_scikit_learn_from_the_same_start() -> None:
    x, truth = make_blobs(n_samples=3000, centers=8, n_features=16, cluster_std=1.0, random_state=0)
    init = x[[int(np.flatnonzero(truth == c)[0]) for c in range(8)]]
    ours = kmeans(torch.tensor(x, dtype=torch.float32), 8, iters=20, init=torch.tensor(init, dtype=torch.float32))
    theirs = KMeans(8, init=init, n_init=1, max_iter=20, algorithm="lloyd", tol=0).fit(x)
    assert adjusted_rand_score(theirs.labels_, ours.labels.numpy()) == 1.0  # same partition up to relabelling
    assert adjusted_rand_score(truth, ours.labels.numpy()) == 1.0  # separable blobs are recovered
    assert abs(ours.inertia - theirs.inertia_ / len(x)) < 1e-3 * ours.inertia


def test_random_start_is_seeded_and_chunking_does_not_change_the_result() -> None:
    x = torch.randn(2000, 8)
    a = kmeans(x, 10, iters=5, seed=3)
    b = kmeans(x, 10, iters=5, seed=3, chunk=128)
    c = kmeans(x, 10, iters=5, seed=4)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)


def test_empty_clusters_are_reseeded_by_splitting_a_big_one() -> None:
    x = torch.cat([torch.zeros(50, 4), torch.randn(50, 4) + 5.0])
    start = torch.zeros(6, 4)  # every centroid on the same spot: all but one cluster start empty
    result = kmeans(x, 6, iters=10, init=start)
    assert result.splits >= 5
    assert torch.unique(result.labels).numel() >= 4


def test_pca_whitening_gives_unit_covariance() -> None:
    mixing = torch.randn(32, 32, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4000, 32, generator=torch.Generator().manual_seed(1)) @ mixing + 3.0
    z = pca_whiten(x, 12)
    assert z.shape == (4000, 12)
    assert torch.allclose(torch.cov(z.T), torch.eye(12), atol=1e-3)
    assert torch.allclose(z.mean(0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(l2_normalise(z).norm(dim=1), torch.ones(4000), atol=1e-5)


def test_nmi_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 30, 5000)
    b = (a + rng.integers(0, 4, 5000)) % 40
    assert abs(nmi(torch.tensor(a), torch.tensor(b)) - normalized_mutual_info_score(a, b)) < 1e-9
    assert nmi(torch.tensor(a), torch.tensor(a + 7)) == 1.0  # relabelling does not matter
    assert nmi(torch.tensor(a), torch.tensor(rng.integers(0, 30, 5000))) < 0.05


def test_sampling_is_uniform_over_non_empty_clusters() -> None:
    labels = torch.cat([torch.zeros(900), torch.ones(90), torch.full((10,), 5.0)]).long()
    picked = uniform_over_clusters(labels, 3000, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[picked], minlength=6)
    assert picked.numel() == 3000
    assert counts[[0, 1, 5]].min() >= 990 and counts[[2, 3, 4]].sum() == 0
