"""Frechet distance of two 2048-d Inception statistics: ours (symmetric eigendecompositions) vs pytorch-fid's
``calculate_frechet_distance`` (SciPy sqrtm), same inputs, same process.

    python bench/fid_distance.py [--n 100 3000]

Prints each one's seconds, the speed ratio and the relative difference of the two distances. The evaluate stage
computes one distance per method and task (11 in the default pipeline), so this is part of its wall time.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from pytorch_fid.fid_score import calculate_frechet_distance

from faceres.metrics.fid import activation_statistics, frechet_distance

DIMS = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 3000], help="images per set")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(DIMS, DIMS)) / np.sqrt(DIMS)
    warnings.simplefilter("ignore")  # few-image and singular-matrix warnings: not what is measured
    for n in args.n:
        a = activation_statistics(np.maximum(rng.normal(size=(n, DIMS)) @ mixing, 0))
        b = activation_statistics(np.maximum(1.1 * rng.normal(size=(n, DIMS)) @ mixing + 0.05, 0))
        start = time.perf_counter()
        reference = calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
        peer_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = frechet_distance(a, b)
        ours_s = time.perf_counter() - start
        print(f"n = {n:5d}: ours {ours_s:6.2f} s, pytorch-fid {peer_s:6.2f} s -> {peer_s / ours_s:4.1f}x faster; "
              f"FID {ours:.6f} vs {reference:.6f} (relative difference {abs(ours - reference) / reference:.1e})")


if __name__ == "__main__":
    main()
