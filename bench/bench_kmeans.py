"""k-means time: ours (PyTorch, on the GPU when there is one) vs scikit-learn, on identical features.

Both arms run Lloyd's algorithm from the same initial centroids for the same number of iterations on
the same PCA-whitened, L2-normalised features (DeepCluster's clustering input), so the ratio is the
speed of the implementation, not of a different algorithm.

    python bench/bench_kmeans.py                      # N=50k, d=256, k=1000, 20 iterations
    python bench/bench_kmeans.py --n 1281167 --k 10000   # DeepCluster's size (GPU)
    python bench/bench_kmeans.py --smoke              # seconds, tiny (CI)
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch
from _timing import parser as bench_parser
from sklearn.cluster import KMeans

from methods.pretext._kmeans import kmeans, l2_normalise, pca_whiten


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--skip-sklearn-above", type=int, default=200_000,
                        help="only time scikit-learn up to this N (it takes minutes beyond)")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.d, args.k, args.iters = 2000, 32, 20, 3

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(1 if args.smoke else cores)  # smoke runs share a CI machine: no oversubscription
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    print(f"machine: {platform.machine()}, {cores} cores, GPU: {gpu}; torch {torch.__version__}")

    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(2 * args.d, 2 * args.d, generator=generator)
    raw = torch.randn(args.n, 2 * args.d, generator=generator) @ mixing
    features = l2_normalise(pca_whiten(raw, args.d))
    init = features[torch.randperm(args.n, generator=generator)[: args.k]]
    print(f"features {args.n} x {args.d}, k = {args.k}, {args.iters} Lloyd iterations from the same start")

    x = features.to(device)
    kmeans(x[: min(args.n, 4 * args.k)], args.k, iters=1, init=init)  # warm-up (CUDA context, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    ours = kmeans(x, args.k, iters=args.iters, init=init)
    if device == "cuda":
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - start
    print(f"ours ({device}):        {ours_s:8.2f} s   inertia {ours.inertia:.5f}")

    if args.n > args.skip_sklearn_above:
        print("scikit-learn: skipped (--skip-sklearn-above)")
        return
    start = time.perf_counter()
    theirs = KMeans(args.k, init=init.numpy(), n_init=1, max_iter=args.iters, tol=0.0, algorithm="lloyd")
    theirs.fit(features.numpy().astype(np.float32))
    sk_s = time.perf_counter() - start
    print(f"scikit-learn (cpu): {sk_s:8.2f} s   inertia {theirs.inertia_ / args.n:.5f}")
    print(f"ratio (scikit-learn time / ours): {sk_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
