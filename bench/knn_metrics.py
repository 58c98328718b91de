"""Benchmark: precision / recall and iPrecision / iRecall for k = 1..4 on N x 2048 features.

Ours (faceres.metrics.precision_recall: one faiss k-NN search per set, one tiled fake x real pass for all k)
against the peers' algorithm as a user of torch-fidelity (``calculate_precision_recall_part``, its
memory-saving variant) or stylegan2-ada-pytorch runs it: pairwise ``torch.cdist`` in blocks of 10,000 rows x
all columns, the k-th value per row, one k per call (so four calls), iPrecision / iRecall read off the same
blocks' paired distances.

Each path runs in its own subprocess (same seeded data) so its peak RSS, which tracemalloc cannot see for
torch / faiss buffers, is measured alone (getrusage ru_maxrss). Prints wall and CPU times, their ratio, the
peak memory of each, and checks that both give the same per-sample results. Target: ours >= 3x faster at
N = 20,000 with a peak under 2 GB.

    python bench/knn_metrics.py                 # N = 10,000 and 20,000
    python bench/knn_metrics.py --n 5000 --dim 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KS = (1, 2, 3, 4)
QUANTITIES = ("precision", "recall", "iprecision", "irecall")
PEER_BATCH = 10_000


def make_data(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard Gaussian 'ground truth' and 'restorations' of the same distribution, each correlated with its
    own ground truth by a per-pair rho ~ U(0, 0.25): in 2048-d that puts the paired distance on both sides of
    the k-NN radii, so none of the four metrics sits at 0 or 1."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, dim), dtype=np.float32)
    rho = rng.uniform(0.0, 0.25, size=(n, 1)).astype(np.float32)
    fake = rho * real + np.sqrt(1 - rho**2) * rng.standard_normal((n, dim), dtype=np.float32)
    return real, fake


def ours(real: np.ndarray, fake: np.ndarray) -> dict[str, np.ndarray]:
    from faceres.metrics.manifold import precision_recall

    result = precision_recall(real, fake, ks=KS, paired=True)
    return {
        "precision": result.fake_in_real_manifold,
        "recall": result.real_in_fake_manifold,
        "iprecision": result.fake_in_own_real_ball,
        "irecall": result.real_in_own_fake_ball,
    }


def peer_one_k(real, fake, k: int, batch: int = PEER_BATCH):
    """One neighbourhood size, the torch-fidelity / stylegan2-ada way (blocked cdist, kthvalue per row)."""
    import torch

    def blocked_distances(rows, cols):  # rows x all cols, computed batch of cols by batch of cols
        return torch.cat([torch.cdist(rows, part) for part in cols.split(batch)], dim=1)

    def kth_radii(features):  # k + 1: the point itself is its own nearest neighbour
        return torch.cat([blocked_distances(rows, features).kthvalue(k + 1, dim=1).values for rows in features.split(batch)])

    def inside(probes, centres, radii):  # any ball, and the paired ball (row i of probes <-> row i of centres)
        any_ball, own_ball = [], []
        for start in range(0, len(probes), batch):
            dist = blocked_distances(probes[start : start + batch], centres)
            any_ball.append((dist <= radii[None, :]).any(dim=1))
            rows = torch.arange(dist.shape[0])
            own_ball.append(dist[rows, start + rows] <= radii[start + rows])
            del dist
        return torch.cat(any_ball), torch.cat(own_ball)

    real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    precision, iprecision = inside(fake_t, real_t, kth_radii(real_t))
    recall, irecall = inside(real_t, fake_t, kth_radii(fake_t))
    return precision.numpy(), recall.numpy(), iprecision.numpy(), irecall.numpy()


def peer(real: np.ndarray, fake: np.ndarray) -> dict[str, np.ndarray]:
    per_k = [peer_one_k(real, fake, k) for k in KS]  # four separate calls, as the peers' API is used
    return {q: np.stack([result[i] for result in per_k], axis=1) for i, q in enumerate(QUANTITIES)}


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (Linux: clear_refs 5), so the peak covers only the timed work."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    """This process's peak resident set (all allocators: torch, faiss, numpy). VmHWM belongs to the current
    address space; ru_maxrss (the fallback) would also count the parent's RSS at fork time."""
    peak = _status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(path: str, n: int, dim: int, seed: int, out: Path) -> None:
    import torch

    import faceres.metrics.manifold  # noqa: F401  (imports are not part of the timed work)

    real, fake = make_data(n, dim, seed)
    resident_kib = _status_kib("VmRSS") or 0
    peak_is_work_only = reset_peak_rss()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    flags = {"ours": ours, "peer": peer}[path](real, fake)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    np.savez(out, **flags)
    out.with_suffix(".json").write_text(json.dumps({
        "wall_s": wall, "cpu_s": cpu, "peak_kib": peak_rss_kib(), "resident_kib": resident_kib,
        "peak_is_work_only": peak_is_work_only, "threads": torch.get_num_threads()}))


def run_worker(path: str, args, tmp: Path) -> tuple[dict, dict[str, np.ndarray]]:
    out = tmp / f"{path}-{args.n_current}.npz"
    command = [sys.executable, __file__, "--worker", path, "--n", str(args.n_current), "--dim", str(args.dim),
               "--seed", str(args.seed), "--out", str(out)]
    subprocess.run(command, check=True)
    with np.load(out) as data:
        flags = {q: data[q] for q in QUANTITIES}
    return json.loads(out.with_suffix(".json").read_text()), flags


class Float64Check:
    """Brute-force float64 answer for single samples, used only where the two paths disagree. Candidate balls
    are shortlisted with float32 faiss radii plus a 1% margin (far above float32 error); exact radii decide."""

    def __init__(self, n: int, dim: int, seed: int):
        import faiss

        self.real, self.fake = make_data(n, dim, seed)
        self.approx_radii = {}
        for name, points in (("real", self.real), ("fake", self.fake)):
            index = faiss.IndexFlatL2(dim)
            index.add(points)
            self.approx_radii[name] = index.search(points, max(KS) + 1)[0][:, 1:]  # squared, self first

    @staticmethod
    def sq_dist(a, b):
        diff = a.astype(np.float64) - b.astype(np.float64)
        return np.einsum("...j,...j->...", diff, diff)

    def radius(self, points, j, k):  # exact squared distance to the k-th nearest other point
        d = self.sq_dist(points, points[j])
        d[j] = np.inf
        return np.partition(d, k - 1)[k - 1]

    def decide(self, quantity: str, i: int, k: int) -> bool:
        in_real_balls = quantity in ("precision", "iprecision")
        probes, centres = (self.fake, self.real) if in_real_balls else (self.real, self.fake)
        approx = self.approx_radii["real" if in_real_balls else "fake"][:, k - 1]
        if quantity.startswith("i"):
            return bool(self.sq_dist(probes[i], centres[i]) <= self.radius(centres, i, k))
        d = self.sq_dist(centres, probes[i])
        shortlist = np.flatnonzero(d <= 1.01 * approx + 1e-6)
        return any(d[j] <= self.radius(centres, j, k) for j in shortlist)


def compare(ours_flags, peer_flags, n, dim, seed) -> int:
    differing, check = 0, None
    for q in QUANTITIES:
        rows, cols = np.nonzero(ours_flags[q] != peer_flags[q])
        for i, c in zip(rows, cols):
            check = check or Float64Check(n, dim, seed)
            truth = check.decide(q, int(i), KS[c])
            print(f"  differs: {q} sample {i} k={KS[c]}: ours {ours_flags[q][i, c]}, peer {peer_flags[q][i, c]}, float64 {truth}")
            assert ours_flags[q][i, c] == truth, "ours disagrees with the float64 definition"
            differing += 1
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 20_000], help="features per set")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["ours", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.n[0], args.dim, args.seed, args.out)
        return

    print(f"precision/recall + iPrecision/iRecall, k = {KS}, dim {args.dim}; peer = blocked torch.cdist, "
          f"{PEER_BATCH} rows x all columns, one k per call")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            args.n_current = n
            stats, flags = {}, {}
            for path in ("ours", "peer"):
                stats[path], flags[path] = run_worker(path, args, Path(tmp))
                s = stats[path]
                during = "during the work" if s["peak_is_work_only"] else "of the process"
                print(f"N={n:>6} {path:>4}: wall {s['wall_s']:8.1f} s  cpu {s['cpu_s']:8.1f} s  "
                      f"peak RSS {during} {s['peak_kib'] / 2**20:5.2f} GiB (resident before it, libraries + "
                      f"features: {s['resident_kib'] / 2**20:4.2f} GiB), {s['threads']} torch threads", flush=True)
            differing = compare(flags["ours"], flags["peer"], n, args.dim, args.seed)
            means = {q: np.round(flags["ours"][q].mean(axis=0), 4).tolist() for q in QUANTITIES}
            print(f"N={n:>6} speed-up ours vs peer: wall {stats['peer']['wall_s'] / stats['ours']['wall_s']:.1f}x, "
                  f"cpu {stats['peer']['cpu_s'] / stats['ours']['cpu_s']:.1f}x; "
                  f"per-sample results {'identical' if differing == 0 else f'identical but {differing} peer float32 flips'}")
            print(f"N={n:>6} values (k=1..4): {means}", flush=True)


if __name__ == "__main__":
    main()
