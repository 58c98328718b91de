"""Precision / recall (Kynkaanniemi et al. 2019) and iPrecision / iRecall (Zhao et al. 2022, Algorithm 1).

Definitions, for neighbourhood size k and Euclidean distance d:

- radius_k(x, S) = distance from x in S to its k-th nearest *other* member of S (self excluded);
- precision_k = share of fake features f with d(f, r) <= radius_k(r, Real) for SOME real r;
- recall_k    = share of real features r with d(r, f) <= radius_k(f, Fake) for SOME fake f;
- iPrecision_k = share of pairs i with d(f_i, r_i) <= radius_k(r_i, Real): a restoration counts only inside
  the ball of its own ground truth (Algorithm 1's ``id(e_g) == id(e_r)``; its typos read as intended);
- iRecall_k    = share of pairs i with d(r_i, f_i) <= radius_k(f_i, Fake).

All k = 1..k_max come out of one pass, without an N x N matrix:

1. radii: one exact faiss ``IndexFlatL2`` k-NN search per set (k_max + 1 + a few neighbours);
2. precision and recall together: one tiled float32 product fake x real (both directions share each tile
   of distances; per tile, a min-reduction against the k_max balls finds the few probes worth testing
   against the smaller balls);
3. iPrecision / iRecall: the N paired distances.

Exactness: float32 BLAS distances (faiss's and ours) carry rounding error, which decides ties and
near-ties wrongly (duplicated images give 1e-4 instead of 0). Every float32 distance is therefore used only
with a rigorous error bound; a decision the bound cannot settle is recomputed from the inputs in float64
(direct differences). The results equal the float64 brute-force definition with ``<=`` (ties inside),
compared as squared distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from faceres.config.schema import check_ks
from faceres.core.devices import float32_matmuls
from faceres.core.errors import DataError

_UNIT_ROUNDOFF_F32 = 2.0**-24
# Extra neighbours fetched beyond k_max + 1 so that the float32 k-NN order can be verified in float64.
_EXTRA_NEIGHBOURS = 4
# Rows x columns of one fake x real tile of float32 distances (8 MiB, so the per-tile passes run from cache).
_TILE = (1024, 2048)
# Elements of the k-NN candidate arrays handled at once.
_BLOCK_ELEMENTS = 2**24
# Float64 elements gathered at once when recomputing distances exactly: 2**21 = 16 MiB.
_EXACT_CHUNK_ELEMENTS = 2**21


@dataclass(frozen=True)
class ManifoldMetrics:
    """Per-sample results of :func:`precision_recall` for each k in ``ks`` (column j is k = ks[j]).

    ``fake_in_real_manifold[i, j]``: fake i lies in some real k-NN ball (its mean over i is precision_k);
    ``real_in_fake_manifold``: likewise for recall. ``fake_in_own_real_ball`` / ``real_in_own_fake_ball``:
    pair i's restoration lies in its ground truth's ball / the reverse (iPrecision / iRecall); None when the
    sets were not paired.
    """

    ks: tuple[int, ...]
    fake_in_real_manifold: np.ndarray
    real_in_fake_manifold: np.ndarray
    fake_in_own_real_ball: np.ndarray | None = None
    real_in_own_fake_ball: np.ndarray | None = None

    @staticmethod
    def _by_k(ks: tuple[int, ...], flags: np.ndarray | None) -> dict[int, float] | None:
        return None if flags is None else {k: float(flags[:, j].mean()) for j, k in enumerate(ks)}

    @property
    def precision(self) -> dict[int, float]:
        return self._by_k(self.ks, self.fake_in_real_manifold)

    @property
    def recall(self) -> dict[int, float]:
        return self._by_k(self.ks, self.real_in_fake_manifold)

    @property
    def iprecision(self) -> dict[int, float] | None:
        return self._by_k(self.ks, self.fake_in_own_real_ball)

    @property
    def irecall(self) -> dict[int, float] | None:
        return self._by_k(self.ks, self.real_in_own_fake_ball)


class _FeatureSet:
    """One feature set: the caller's array (source of exact float64 distances), its float32 copy for faiss and
    BLAS, squared norms, and ``slack`` s_i such that |float32 d^2(i, j) - exact d^2(i, j)| <= s_i + s_j."""

    def __init__(self, features, name: str):
        array = np.asarray(features)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise DataError(f"{name} features must be a non-empty N x d array, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{name} features must be numeric, got dtype {array.dtype}")
        self.exact = array
        self.f32 = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(self.f32).all():
            raise DataError(f"{name} features contain NaN or infinite values (or values beyond float32 range)")
        self.n, self.dim = array.shape
        self.sq_norm = _row_sq_norms(array)
        # Rounding-error bound of a float32 squared distance ||x||^2 + ||y||^2 - 2<x, y> (faiss's and ours), or
        # of a direct float32 sum of squared differences, including the rounding of float64 inputs to float32:
        # at most (gamma_d + 4u) (|x| + |y|)^2 with gamma_d ~ d u; we take twice that and split
        # (|x| + |y|)^2 <= 2|x|^2 + 2|y|^2 into per-point terms.
        coefficient = 2.0 * (self.dim + 16) * _UNIT_ROUNDOFF_F32
        self.slack = 2.0 * coefficient * self.sq_norm


def _row_sq_norms(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape[0])
    step = max(1, _EXACT_CHUNK_ELEMENTS // array.shape[1])
    for start in range(0, array.shape[0], step):
        rows = array[start : start + step].astype(np.float64)
        out[start : start + step] = np.einsum("ij,ij->i", rows, rows)
    return out


def pair_sq_distances(a: np.ndarray, b: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Exact float64 squared distances ||a[rows_a[t]] - b[rows_b[t]]||^2 (direct differences), chunked."""
    out = np.empty(len(rows_a))
    step = max(1, _EXACT_CHUNK_ELEMENTS // a.shape[1])
    for start in range(0, len(rows_a), step):
        stop = start + step
        diff = np.subtract(a[rows_a[start:stop]], b[rows_b[start:stop]], dtype=np.float64)
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out


def paired_distances(a, b) -> np.ndarray:
    """Euclidean distance ||a[i] - b[i]|| of each row pair of two N x d feature arrays (float64, from direct
    differences): e.g. a restoration's identity embedding to its ground truth's, the distance iPrecision compares
    with the ground truth's k-NN radius."""
    first, second = _FeatureSet(a, "first"), _FeatureSet(b, "second")
    if first.exact.shape != second.exact.shape:
        raise DataError(f"paired features must have the same shape: {first.exact.shape} vs {second.exact.shape}")
    rows = np.arange(first.n)
    return np.sqrt(pair_sq_distances(first.exact, second.exact, rows, rows))


def _knn_sq_radii(fs: _FeatureSet, k_max: int) -> np.ndarray:
    """Exact squared distances (N x k_max, float64) from each sample to its 1st..k_max-th nearest other sample.

    faiss proposes candidates; their distances are recomputed in float64; a row is accepted once every sample
    faiss did not return is provably no closer than the row's k_max-th exact distance (else more candidates).
    """
    if fs.n < k_max + 1:
        raise DataError(f"k = {k_max} needs at least {k_max + 1} samples per set, got {fs.n}")
    index = faiss.IndexFlatL2(fs.dim)
    index.add(fs.f32)
    radii = np.empty((fs.n, k_max))
    pending = np.arange(fs.n)
    n_candidates = min(fs.n, k_max + 1 + _EXTRA_NEIGHBOURS)
    max_slack = fs.slack.max()
    while pending.size:
        unresolved = []
        step = max(1, _BLOCK_ELEMENTS // n_candidates // 8)
        for start in range(0, pending.size, step):
            rows = pending[start : start + step]
            queries = fs.f32[start : start + step] if pending.size == fs.n else fs.f32[rows]  # no copy at first
            found, ids = index.search(queries, n_candidates)  # float32 d^2, ascending
            approx = np.where(ids == rows[:, None], np.inf, found)  # self excluded (a duplicate is another sample)
            # Only candidates within reach of the k_max-th smallest can be among the k_max nearest:
            # exact <= approx + s_i + s_j <= T + s_i + s_max for the k_max best, exact >= approx - s_i - s_j.
            reach = np.sort(approx, axis=1)[:, k_max - 1] + 2.0 * (fs.slack[rows] + max_slack)
            near_row, near_col = np.nonzero(approx <= reach[:, None])
            exact = np.full(ids.shape, np.inf)
            exact[near_row, near_col] = pair_sq_distances(fs.exact, fs.exact, rows[near_row], ids[near_row, near_col])
            exact.sort(axis=1)
            kth = exact[:, :k_max]
            if n_candidates == fs.n:
                verified = np.ones(rows.size, dtype=bool)
            else:
                # Samples faiss left out have float32 d^2 >= found[:, -1], so exact >= that minus slack.
                lower_bound = found[:, -1] - fs.slack[rows] - max_slack
                verified = (kth[:, -1] <= lower_bound) | (kth[:, -1] == 0.0)
            radii[rows[verified]] = kth[verified]
            unresolved.append(rows[~verified])
        pending = np.concatenate(unresolved)
        n_candidates = min(fs.n, 4 * n_candidates)
    return radii


def knn_radii(features, k_max: int) -> np.ndarray:
    """N x k_max float64 array: column k-1 holds each sample's distance to its k-th nearest other sample."""
    return np.sqrt(_knn_sq_radii(_FeatureSet(features, "input"), k_max))


def _f32_upper(values: np.ndarray) -> np.ndarray:
    """float32 values >= the float64 ``values`` (a float32 comparison then never drops a candidate)."""
    rounded = values.astype(np.float32)
    return np.where(rounded.astype(np.float64) < values, np.nextafter(rounded, np.float32(np.inf)), rounded)


class _BallTest:
    """Decides, for one direction and one k, which probes lie in some ball: fakes in real balls (precision)
    or reals in fake balls (recall), tile by tile of ``lower`` (fake x real), where
    lower <= exact d^2 <= lower + 2 (s_fake + s_real)."""

    def __init__(self, probes: _FeatureSet, centres: _FeatureSet, sq_radii: np.ndarray, inside: np.ndarray, probe_axis: int):
        self.probes, self.centres, self.inside, self.axis = probes, centres, inside, probe_axis
        self.sq_radii = sq_radii  # exact float64, one per centre
        self.sq_radii_up = torch.from_numpy(_f32_upper(sq_radii))

    def update(self, lower: torch.Tensor, p0: int, c0: int, candidates: np.ndarray, scratch: torch.Tensor) -> np.ndarray:
        """Examines the probes ``candidates`` (indices along ``axis`` of the fake x real tile ``lower``, whose
        probes start at p0 and centres at c0) and marks those proven inside. Returns the candidates with
        some lower <= radius here: all others are outside every ball of this tile that is no larger.
        ``scratch``: a flat float32 buffer of at least the tile's size."""
        n_p, n_c = lower.shape[self.axis], lower.shape[1 - self.axis]
        if candidates.size == 0:
            return candidates
        if candidates.size < n_p // 2:  # few candidates left: work on their slice of the tile only
            lower = lower.index_select(self.axis, torch.from_numpy(candidates))
            examined = candidates
        else:
            examined = np.arange(n_p)
        margin = scratch[: lower.numel()].view(lower.shape)
        radii = self.sq_radii_up[c0 : c0 + n_c]
        torch.sub(lower, radii[None, :] if self.axis == 0 else radii[:, None], out=margin)
        # margin <= 0 exactly when lower <= radius (a float32 difference keeps its sign); a probe whose
        # margins in this tile are all > 0 is provably outside every ball of the tile.
        best = margin.amin(dim=1 - self.axis).numpy().astype(np.float64)
        hit = best <= 0
        if examined.size != candidates.size:
            hit &= np.isin(examined, candidates, assume_unique=True)
        rows = np.flatnonzero(hit)  # positions in the examined slice
        probe = p0 + examined[rows]
        # The best pair is provably inside when even its upper bound is: lower + 2 (s_p + s_c) <= radius.
        # (The last term covers the float32 rounding of the radius and of the subtraction.)
        rounding = 2.0**-21 * (float(radii.max()) - best[rows])
        slack = self.probes.slack[probe] + self.centres.slack[c0 : c0 + n_c].max()
        certain = best[rows] + 2.0 * slack + rounding <= 0
        self.inside[probe[certain]] = True
        unsure = rows[~certain & ~self.inside[probe]]
        if unsure.size:  # near a ball's surface: decide each candidate pair of these probes exactly
            index = torch.from_numpy(unsure)
            near = (margin[index] if self.axis == 0 else margin[:, index].T) <= 0
            pair_row, pair_col = np.nonzero(near.numpy())
            pair_probe, centre = p0 + examined[unsure[pair_row]], c0 + pair_col
            exact = pair_sq_distances(self.probes.exact, self.centres.exact, pair_probe, centre)
            self.inside[pair_probe[exact <= self.sq_radii[centre]]] = True
        return examined[rows]


@float32_matmuls()  # the error bounds assume true float32 products: no TF32 a caller may have enabled
def _cross_membership(fake: _FeatureSet, real: _FeatureSet, fake_r2: np.ndarray, real_r2: np.ndarray):
    """(fake_in_real_ball, real_in_fake_ball): n x k_max bool arrays from one tiled pass over fake x real.

    Both directions share each tile of float32 distances. Per tile and direction, one subtraction and one
    min-reduction against the largest (k_max) balls find the few probes that can lie in any ball of the
    tile; only those are tested against the smaller balls.
    """
    k_max = fake_r2.shape[1]
    fake_in = np.zeros((k_max, fake.n), dtype=bool)
    real_in = np.zeros((k_max, real.n), dtype=bool)
    directions = (  # (tests for k = 1..k_max, membership array, probe axis in the tile)
        ([_BallTest(fake, real, real_r2[:, k], fake_in[k], probe_axis=0) for k in range(k_max)], fake_in, 0),
        ([_BallTest(real, fake, fake_r2[:, k], real_in[k], probe_axis=1) for k in range(k_max)], real_in, 1),
    )
    fake32, real32 = torch.from_numpy(fake.f32), torch.from_numpy(real.f32)
    # lower = float32 d^2 - s_i - s_j, with the slack folded into the norms.
    fake_term = torch.from_numpy((fake.sq_norm - fake.slack).astype(np.float32))
    real_term = torch.from_numpy((real.sq_norm - real.slack).astype(np.float32))
    rows, cols = _TILE
    lower_buffer, scratch = torch.empty(rows * cols), torch.empty(rows * cols)
    for i0 in range(0, fake.n, rows):
        for j0 in range(0, real.n, cols):
            f, r = fake32[i0 : i0 + rows], real32[j0 : j0 + cols]
            shape = (f.shape[0], r.shape[0])
            lower = torch.addmm(real_term[None, j0 : j0 + cols], f, r.T, alpha=-2.0,
                                out=lower_buffer[: shape[0] * shape[1]].view(shape))
            lower += fake_term[i0 : i0 + rows, None]
            for tests, inside, axis in directions:
                p0, c0 = (i0, j0) if axis == 0 else (j0, i0)
                span = slice(p0, p0 + shape[axis])
                # Probes inside even the smallest ball are settled for every k (radii grow with k).
                possible = tests[-1].update(lower, p0, c0, np.flatnonzero(~inside[0, span]), scratch)
                for k in range(k_max - 1):
                    tests[k].update(lower, p0, c0, possible[~inside[k, p0 + possible]], scratch)
                np.logical_or.accumulate(inside[:, span], axis=0, out=inside[:, span])
    return fake_in.T, real_in.T


def precision_recall(real_features, fake_features, ks: Sequence[int] = (1, 2, 3, 4), *, paired: bool = True) -> ManifoldMetrics:
    """Precision, recall and (``paired``: row i of both sets is one image pair) iPrecision / iRecall for ``ks``.

    ``real_features``: N_r x d (ground truth), ``fake_features``: N_f x d (restorations). See the module
    docstring for the definitions. Memory is O((N_r + N_f) d) plus a 64 MiB distance block.
    """
    ks = check_ks(ks)
    k_max = ks[-1]
    real, fake = _FeatureSet(real_features, "real"), _FeatureSet(fake_features, "fake")
    if real.dim != fake.dim:
        raise DataError(f"real and fake features differ in dimension: {real.dim} vs {fake.dim}")
    if paired and real.n != fake.n:
        raise DataError(f"paired sets must have equally many samples: {real.n} real vs {fake.n} fake")
    real_r2, fake_r2 = _knn_sq_radii(real, k_max), _knn_sq_radii(fake, k_max)
    fake_in, real_in = _cross_membership(fake, real, fake_r2, real_r2)
    columns = np.array(ks) - 1
    result = dict(ks=ks, fake_in_real_manifold=fake_in[:, columns], real_in_fake_manifold=real_in[:, columns])
    if paired:
        pair_d2 = pair_sq_distances(fake.exact, real.exact, np.arange(real.n), np.arange(real.n))[:, None]
        result["fake_in_own_real_ball"] = pair_d2 <= real_r2[:, columns]
        result["real_in_own_fake_ball"] = pair_d2 <= fake_r2[:, columns]
    return ManifoldMetrics(**result)
