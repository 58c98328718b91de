"""Metrics against independent references: hand-computed cases and the definitions written out (PSNR, SSIM),
the lpips package's own construction, scipy, pytorch-fid's own activation loop and brute-force numpy."""

from __future__ import annotations

import copy
import json
import types
import warnings
from pathlib import Path

import lpips
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats
import torch
import torchvision
from PIL import Image, ImageFilter
from pytorch_fid.fid_score import get_activations
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from faceres.core.errors import ConfigError, DataError, WeightsError
from faceres.metrics.evaluate import EvalOptions, Networks, evaluate_folders
from faceres.metrics.fid import (
    GaussianStats,
    UnreliableMetricWarning,
    activation_statistics,
    frechet_distance,
    image_set_statistics,
)
from faceres.metrics.perceptual import build_lpips, lpips_distance
from faceres.metrics.images import identity_embeddings, inception_activations, pair_images
from faceres.metrics.manifold import knn_radii, precision_recall
from faceres.metrics.pixel import psnr, ssim
from faceres.metrics.stats import summarize

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba-10k" / "images"


def celeba_paths(count: int, start: int = 0) -> list[Path]:
    paths = sorted(CELEBA.glob("*.jpg"))[start : start + count]
    assert len(paths) == count, f"test photos missing: expected {count} JPEGs in {CELEBA}"
    return paths


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5))), dtype=np.float64)
    return np.clip(np.round(blurred + rng.normal(0.0, rng.uniform(2.0, 10.0), image.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    pairs = []
    for path in celeba_paths(6):
        gt = np.asarray(Image.open(path).convert("RGB"))
        pairs.append((degrade(gt, rng), gt))
    return pairs


@pytest.fixture(scope="module")
def small_photo_batches(photo_pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Three 48x48 face crops and their degraded versions as Nx3xHxW tensors in [0, 1] (LPIPS inputs)."""
    def batch(arrays):
        return torch.stack([torch.from_numpy(a[40:88, 20:68].copy()).permute(2, 0, 1) for a in arrays]).float() / 255
    return batch([p for p, _ in photo_pairs[:3]]), batch([g for _, g in photo_pairs[:3]])


# ---------------------------------------------------------------- PSNR / SSIM against hand-computed cases


def brute_force_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. (2004) written out: at every window position fully inside the image, Gaussian-weighted
    (11x11, sigma 1.5) means, population variances and covariance; the SSIM map's mean, then over channels."""
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    per_channel = []
    for ch in range(a.shape[2]):
        values = []
        for i in range(a.shape[0] - 10):
            for j in range(a.shape[1] - 10):
                x, y = a[i:i + 11, j:j + 11, ch], b[i:i + 11, j:j + 11, ch]
                mx, my = (window * x).sum(), (window * y).sum()
                vx, vy = (window * (x - mx) ** 2).sum(), (window * (y - my) ** 2).sum()
                cov = (window * (x - mx) * (y - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_psnr_hand_computed():
    gt = np.full((16, 16, 3), 100, np.uint8)
    assert psnr(gt + 5, gt) == pytest.approx(20 * np.log10(255 / 5), abs=1e-12)  # MSE = 25
    half = gt.copy()
    half[:8] += 10  # MSE = 100 / 2
    assert psnr(half, gt) == pytest.approx(10 * np.log10(255**2 / 50), abs=1e-12)
    border = gt.copy()
    border[:2] = 0  # a difference confined to the border vanishes under crop_border=2
    assert psnr(border, gt, crop_border=2) == float("inf") and psnr(border, gt) < 20
    # Y of BT.601: white 235, black 16, so black vs white on luma is 20 log10(255 / 219)
    white, black = np.full((12, 12, 3), 255, np.uint8), np.zeros((12, 12, 3), np.uint8)
    assert psnr(white, black, y_channel=True) == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)


def test_ssim_hand_computed_constant_images():
    # Flat images: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1) everywhere.
    a, b = np.full((20, 20, 3), 100, np.uint8), np.full((20, 20, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)


@pytest.mark.parametrize("crop_border", [0, 4])
@pytest.mark.parametrize("y_channel", [False, True])
def test_ssim_matches_the_definition_written_out(photo_pairs, crop_border, y_channel):
    for pred, gt in photo_pairs[:2]:
        p, g = pred[30:30 + 24 + 2 * crop_border, 20:20 + 22 + 2 * crop_border], gt[30:30 + 24 + 2 * crop_border, 20:20 + 22 + 2 * crop_border]
        ref_p, ref_g = p.astype(np.float64), g.astype(np.float64)
        if crop_border:
            ref_p, ref_g = ref_p[crop_border:-crop_border, crop_border:-crop_border], ref_g[crop_border:-crop_border, crop_border:-crop_border]
        if y_channel:
            weights = np.array([65.481, 128.553, 24.966]) / 255
            ref_p, ref_g = (ref_p @ weights + 16)[..., None], (ref_g @ weights + 16)[..., None]
        value = ssim(p, g, crop_border=crop_border, y_channel=y_channel)
        assert value == pytest.approx(brute_force_ssim(ref_p, ref_g), abs=1e-9)
        assert 0.2 < value < 0.99  # the degradation is real but moderate


def test_psnr_ssim_edge_cases(photo_pairs):
    _, gt = photo_pairs[0]
    assert psnr(gt, gt) == float("inf")
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(DataError, match="sizes differ"):
        psnr(gt, gt[:-1])
    with pytest.raises(DataError, match="crop_border=60"):
        ssim(gt, gt, crop_border=60)


def test_summary_and_bootstrap_ci_against_normal_theory():
    values = np.random.default_rng(3).gamma(2.0, 3.0, size=400)
    ours = summarize(values, ci_level=0.95, n_resamples=20000, rng=np.random.default_rng(7))
    assert ours.mean == pytest.approx(values.mean(), rel=1e-12) and ours.n == 400
    assert ours.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    # With n = 400 the mean is near normal (its skewness is 1.41 / 20 = 0.07): the percentile interval lies
    # within 0.15 standard errors of mean -+ 1.96 SE (skew shifts it ~0.03 SE, 20000 resamples add ~0.02 SE).
    standard_error = values.std(ddof=0) / np.sqrt(values.size)
    assert abs(ours.ci_low - (values.mean() - 1.95996 * standard_error)) < 0.15 * standard_error
    assert abs(ours.ci_high - (values.mean() + 1.95996 * standard_error)) < 0.15 * standard_error
    again = summarize(values, ci_level=0.95, n_resamples=20000, rng=np.random.default_rng(7))
    assert (again.ci_low, again.ci_high) == (ours.ci_low, ours.ci_high)
    one = summarize([2.5], ci_level=0.95, rng=np.random.default_rng(0))
    assert (one.ci_low, one.ci_high) == (2.5, 2.5)
    with pytest.raises(ConfigError, match="rng"):
        summarize(values, ci_level=0.95)


# ---------------------------------------------------------------- LPIPS vs the lpips package's own build


def random_features(net: str, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)  # torchvision's initialisers draw from the global generator
    if net == "vgg":
        return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    return torchvision.models.AlexNet().features


def lpips_reference(net: str, features: nn.Sequential, monkeypatch) -> lpips.LPIPS:
    """lpips' own constructor, slicing the given backbone itself (torchvision's factory patched to return it)."""
    factory = {"vgg": "vgg16", "alex": "alexnet"}[net]
    monkeypatch.setattr(lpips.pretrained_networks.tv, factory,
                        lambda *args, **kwargs: types.SimpleNamespace(features=copy.deepcopy(features)))
    return lpips.LPIPS(net=net, pretrained=True, pnet_rand=False, verbose=False).eval()


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_equals_package_forward_with_same_weights(net, small_photo_batches, monkeypatch):
    features = random_features(net, seed=1)
    pred, gt = small_photo_batches
    with torch.no_grad():
        expected = lpips_reference(net, features, monkeypatch)(pred * 2 - 1, gt * 2 - 1).reshape(-1)
        other_backbone = lpips_reference(net, random_features(net, seed=2), monkeypatch)(pred * 2 - 1, gt * 2 - 1).reshape(-1)
    assert torch.equal(lpips_distance(build_lpips(net, features), pred, gt), expected)
    assert torch.equal(lpips_distance(build_lpips(net, features.state_dict()), pred, gt), expected)  # a state_dict too
    assert not torch.allclose(other_backbone, expected)  # the backbone matters, so the equality above is a real check


def test_lpips_rejects_wrong_backbone():
    with pytest.raises(WeightsError, match="LPIPS-vgg"):
        build_lpips("vgg", random_features("alex", seed=0))
    with pytest.raises(ConfigError, match="squeeze"):
        build_lpips("squeeze", random_features("alex", seed=0))


# ---------------------------------------------------------------- FID


def random_stats(rng: np.random.Generator, dim: int, n: int) -> GaussianStats:
    a = rng.normal(size=(dim, dim))
    return GaussianStats(mu=rng.normal(size=dim), sigma=a @ a.T / dim + 0.1 * np.eye(dim), n=n)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for dim in (3, 32, 128):
        a, b = random_stats(rng, dim, 4096), random_stats(rng, dim, 4096)
        covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma).real
        expected = np.sum((a.mu - b.mu) ** 2) + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # enough images: no reliability warning
            assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n", [40, 600])  # singular covariances (n < dim) and full-rank ones
def test_frechet_distance_equals_pytorch_fids(n):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(n)
    dim = 256
    x = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) / 8
    y = 1.1 * rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) / 8 + 0.2
    a, b = activation_statistics(x), activation_statistics(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch-fid's sqrtm(disp=False) deprecation and singular-matrix notes
        expected = calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6 if n < dim else 1e-10)


def test_fid_warns_below_2048_images():
    rng = np.random.default_rng(1)
    stats = activation_statistics(rng.normal(size=(100, 8)))
    with pytest.warns(UnreliableMetricWarning, match="100 images"):
        frechet_distance(stats, stats)


class FakeInception(nn.Module):
    """pytorch-fid's InceptionV3 interface (list of Nx C x h x w maps, [0, 1] input) with a tiny random conv."""

    def __init__(self, dims: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, dims, kernel_size=5, stride=3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return [torch.tanh(self.conv(x * 2 - 1))]


def write_images(folder: Path, images: dict[str, np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, array in images.items():
        Image.fromarray(array).save(folder / name)
        paths.append(folder / name)
    return paths


def test_inception_activations_match_pytorch_fid_loop():
    files = celeba_paths(7)
    model = FakeInception(dims=8)
    expected = get_activations([str(f) for f in files], model, batch_size=3, dims=8, num_workers=0)
    ours = inception_activations(files, model, batch_size=3, progress=False)
    np.testing.assert_array_equal(ours, expected)


def test_fid_statistics_cached_by_content(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {f"{i:02d}.png": rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8) for i in range(10)}
    paths = write_images(tmp_path / "set", arrays)
    model = FakeInception(dims=8)
    first = image_set_statistics(tmp_path / "set", model, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    with torch.no_grad():
        batch = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays.values()]).float() / 255
        direct = model(batch)[0].mean(dim=(2, 3)).double().numpy()  # what pytorch-fid pools
    np.testing.assert_allclose(first.mu, direct.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(first.sigma, np.cov(direct, rowvar=False), rtol=1e-5, atol=1e-8)
    calls = model.calls
    again = image_set_statistics(paths, model, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    assert model.calls == calls and np.array_equal(again.sigma, first.sigma)  # read from the cache
    Image.fromarray(255 - arrays["03.png"]).save(paths[3])  # same names, new content: recomputed
    changed = image_set_statistics(paths, model, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    assert model.calls > calls and not np.allclose(changed.mu, first.mu)
    other_model = FakeInception(dims=8, seed=5)  # other weights: another cache entry
    image_set_statistics(paths, other_model, cache_dir=tmp_path / "cache", batch_size=4, progress=False)
    assert other_model.calls > 0 and len(list((tmp_path / "cache").glob("*.npz"))) == 3


# ---------------------------------------------------------------- precision / recall, iPrecision / iRecall


def brute_force_pr(real: np.ndarray, fake: np.ndarray, ks, paired: bool) -> dict:
    """The definitions with a full float64 distance matrix: self excluded from the radius, ties inside."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def distances(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(d, k):  # distance to the k-th nearest other point
        d = d.copy()
        np.fill_diagonal(d, np.inf)
        return np.sort(d, axis=1)[:, k - 1]

    rr, ff, fr = distances(real, real), distances(fake, fake), distances(fake, real)
    out = {"precision": {}, "recall": {}, "iprecision": {}, "irecall": {}}
    for k in ks:
        real_radii, fake_radii = radii(rr, k), radii(ff, k)
        out["precision"][k] = float(np.mean((fr <= real_radii[None, :]).any(axis=1)))
        out["recall"][k] = float(np.mean((fr <= fake_radii[:, None]).any(axis=0)))
        if paired:
            out["iprecision"][k] = float(np.mean(np.diag(fr) <= real_radii))
            out["irecall"][k] = float(np.mean(np.diag(fr) <= fake_radii))
    return out


def make_features(kind: str, n_real: int, n_fake: int, dim: int, rng: np.random.Generator, dtype=np.float32):
    if kind == "gaussian":
        real = rng.normal(size=(n_real, dim))
        fake = real[:n_fake] + rng.uniform(0.2, 1.5) * rng.normal(size=(n_fake, dim)) if n_fake <= n_real else rng.normal(size=(n_fake, dim))
    elif kind == "offset":  # small spread around a large mean: float32 expansion distances are badly rounded
        real = 40.0 + 0.01 * rng.normal(size=(n_real, dim))
        fake = real[:n_fake] + 0.01 * rng.uniform(0.2, 1.5) * rng.normal(size=(n_fake, dim))
    else:  # integer lattice: many exactly tied distances
        real = rng.integers(0, 3, size=(n_real, dim)).astype(np.float64)
        fake = rng.integers(0, 3, size=(n_fake, dim)).astype(np.float64)
    real, fake = real.astype(dtype), fake.astype(dtype)
    if kind != "lattice":  # duplicated points: distance exactly 0, ties at radius 0
        for target, source in ((real, real), (fake, real), (fake, fake)):
            target[rng.integers(0, len(target), size=len(target) // 5)] = source[rng.integers(0, len(source), size=len(target) // 5)]
    return real, fake


@pytest.mark.parametrize(
    "kind,n_real,n_fake,dim,dtype",
    [("gaussian", 5, 5, 2, np.float32), ("gaussian", 60, 60, 16, np.float32), ("gaussian", 300, 300, 64, np.float32),
     ("gaussian", 250, 170, 32, np.float32), ("offset", 200, 200, 48, np.float32), ("offset", 120, 90, 300, np.float32),
     ("offset", 150, 150, 40, np.float64), ("lattice", 150, 150, 3, np.float32), ("lattice", 80, 100, 2, np.int64)],
)
def test_precision_recall_match_brute_force(kind, n_real, n_fake, dim, dtype):
    rng = np.random.default_rng(n_real * 1000 + dim)
    real, fake = make_features(kind, n_real, n_fake, dim, rng, dtype)
    paired = n_real == n_fake
    ours = precision_recall(real, fake, ks=(1, 2, 3, 4), paired=paired)
    expected = brute_force_pr(real, fake, (1, 2, 3, 4), paired)
    assert ours.precision == expected["precision"]
    assert ours.recall == expected["recall"]
    if paired:
        assert ours.iprecision == expected["iprecision"]
        assert ours.irecall == expected["irecall"]
    else:
        assert ours.iprecision is None and ours.irecall is None


def test_knn_radii_match_brute_force():
    rng = np.random.default_rng(4)
    real, _ = make_features("offset", 150, 150, 20, rng)
    d = np.sqrt(((real[:, None, :].astype(np.float64) - real[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(knn_radii(real, 4), np.sort(d, axis=1)[:, :4])


def test_iprecision_hand_built_case():
    # 1-D. Real radii (k = 1, 2, 3): r0=0: 1, 10, 11; r1=1: 1, 9, 10; r2=10: 1, 9, 10; r3=11: 1, 10, 11.
    # Fake radii: f0=10: 2, 8, 20; f1=2: 8, 10, 28; f2=12: 2, 10, 18; f3=30: 18, 20, 28.
    # Paired distances |f_i - r_i| = 10, 1, 2, 19.
    real = np.array([[0.0], [1.0], [10.0], [11.0]])
    fake = np.array([[10.0], [2.0], [12.0], [30.0]])
    result = precision_recall(real, fake, ks=(1, 2, 3))
    # f0 sits on r2, f1 and f2 touch r1's and r3's unit balls (ties count), f3 is far from everything.
    assert result.precision == {1: 0.75, 2: 0.75, 3: 0.75}
    # Only in its own ground truth's ball: k=1 only f1 (|2-1| = 1 <= 1); k=2 adds f0 (10 <= 10) and f2 (2 <= 9).
    assert result.iprecision == {1: 0.25, 2: 0.75, 3: 0.75}
    assert result.recall == {1: 1.0, 2: 1.0, 3: 1.0}
    # r1 (1 <= 8), r2 (2 <= 2); k=2 adds r3 (19 <= 20); k=3 adds r0 (10 <= 20).
    assert result.irecall == {1: 0.5, 2: 0.75, 3: 1.0}
    np.testing.assert_array_equal(result.fake_in_own_real_ball[:, 0], [False, True, False, False])


def test_precision_recall_input_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="equally many"):
        precision_recall(rng.normal(size=(10, 3)), rng.normal(size=(9, 3)))
    with pytest.raises(DataError, match="at least 5 samples"):
        precision_recall(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))
    with pytest.raises(DataError, match="NaN"):
        precision_recall(np.full((10, 3), np.nan), rng.normal(size=(10, 3)))
    with pytest.raises(ConfigError, match="positive integers"):
        precision_recall(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), ks=(0, 1))


# ---------------------------------------------------------------- folders, pairing, evaluate_folders


class FakeEmbedder:
    """Identity-embedder interface: N x S x S x 3 uint8 -> N x D; here 8 x 8 grey thumbnails (64-d)."""

    input_size = 32

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        assert faces.dtype == np.uint8 and faces.shape[1:] == (32, 32, 3)
        grey = faces.astype(np.float64).mean(axis=3)
        return grey.reshape(len(faces), 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(faces), -1)


class LandmarkFakeEmbedder(FakeEmbedder):
    """Also finds "landmarks" (the image's mean grey level in every coordinate; "fails" on dark faces) and
    records which landmark rows each embedding call received."""

    def __init__(self):
        self.received = []

    def landmarks(self, faces: np.ndarray) -> np.ndarray:
        level = faces.astype(np.float64).mean(axis=(1, 2, 3))
        return np.column_stack([np.repeat(level[:, None], 10, axis=1), (level < 90).astype(float)])

    def __call__(self, faces: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        self.received.append(landmarks)
        return super().__call__(faces)


@pytest.fixture(scope="module")
def restoration_folders(tmp_path_factory):
    """12 square 64x64 CelebA crops as BMP ground truth and degraded PNG restorations (paired by name, not extension)."""
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(5)
    gts, preds = {}, {}
    for path in celeba_paths(12, start=100):
        gt = np.asarray(Image.open(path).convert("RGB"))[25:89, 12:76]
        gts[f"{path.stem}.bmp"], preds[f"{path.stem}.png"] = gt, degrade(gt, rng)
    write_images(root / "gt", gts)
    write_images(root / "pred", preds)
    return root


def test_evaluate_folders_against_references(restoration_folders, tmp_path, monkeypatch):
    root = restoration_folders
    backbone = random_features("alex", seed=3)
    networks = Networks(fid_inception=lambda: FakeInception(dims=8), lpips_backbone=lambda net: backbone,
                        identity_embedder=FakeEmbedder)
    options = EvalOptions(lpips_net="alex", batch_size=5, num_workers=2, ks=(1, 2, 3, 4), seed=1, n_bootstrap=300, progress=False,
                          fid_cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UnreliableMetricWarning):
        result = evaluate_folders(root / "pred", root / "gt", metrics=["psnr", "ssim", "lpips", "fid", "ipr", "ipr_inception"],
                                  networks=networks, out_json=tmp_path / "out" / "m.json", out_csv=tmp_path / "out" / "m.csv",
                                  options=options)
    table = pd.read_csv(tmp_path / "out" / "m.csv")
    summary = json.loads((tmp_path / "out" / "m.json").read_text())
    assert len(table) == 12 and summary["n_pairs"] == 12

    preds = [np.asarray(Image.open(root / "pred" / f)) for f in table["pred_file"]]
    gts = [np.asarray(Image.open(root / "gt" / f)) for f in table["gt_file"]]
    ref_psnr = [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(preds, gts)]
    ref_ssim = [structural_similarity(p.astype(float), g.astype(float), channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255) for p, g in zip(preds, gts)]
    np.testing.assert_allclose(table["psnr"], ref_psnr, atol=1e-6, rtol=0)
    np.testing.assert_allclose(table["ssim"], ref_ssim, atol=1e-6, rtol=0)
    reference = lpips_reference("alex", backbone, monkeypatch)
    to_tensor = lambda arrays: torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in arrays]).float() / 127.5 - 1
    with torch.no_grad():
        np.testing.assert_allclose(table["lpips"], reference(to_tensor(preds), to_tensor(gts)).reshape(-1).numpy(), rtol=1e-5)

    psnr_summary = summary["metrics"]["psnr"]
    assert psnr_summary["n"] == 12 and psnr_summary["mean"] == pytest.approx(np.mean(ref_psnr), abs=1e-9)
    assert psnr_summary["std"] == pytest.approx(np.std(ref_psnr, ddof=1), abs=1e-9)
    assert psnr_summary["ci_low"] < psnr_summary["mean"] < psnr_summary["ci_high"] and psnr_summary["ci_level"] == 0.95

    model = FakeInception(dims=8)
    act_pred = get_activations([str(root / "pred" / f) for f in table["pred_file"]], model, batch_size=5, dims=8, num_workers=0)
    act_gt = get_activations([str(root / "gt" / f) for f in table["gt_file"]], model, batch_size=5, dims=8, num_workers=0)
    mu1, mu2, s1, s2 = act_pred.mean(0), act_gt.mean(0), np.cov(act_pred, rowvar=False), np.cov(act_gt, rowvar=False)
    expected_fid = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert summary["metrics"]["fid"]["value"] == pytest.approx(expected_fid, rel=1e-6)

    expected = brute_force_pr(act_gt, act_pred, (1, 2, 3, 4), paired=True)
    for quantity in ("precision", "recall", "iprecision", "irecall"):
        for k in (1, 2, 3, 4):
            assert summary["metrics"]["ipr_inception"][quantity][f"k{k}"]["mean"] == expected[quantity][k]
    embed = FakeEmbedder()
    gt_embeddings = embed(np.stack([np.asarray(Image.fromarray(g).resize((32, 32), Image.Resampling.BICUBIC)) for g in gts]))
    pred_embeddings = embed(np.stack([np.asarray(Image.fromarray(p).resize((32, 32), Image.Resampling.BICUBIC)) for p in preds]))
    expected = brute_force_pr(gt_embeddings, pred_embeddings, (1, 2, 3, 4), paired=True)
    distance = np.linalg.norm(pred_embeddings - gt_embeddings, axis=1)  # each restoration to its own ground truth
    np.testing.assert_allclose(table["identity_distance"], distance, rtol=1e-12)
    assert summary["metrics"]["identity_distance"]["mean"] == pytest.approx(distance.mean(), rel=1e-12)
    assert summary["metrics"]["identity_distance"]["std"] == pytest.approx(np.std(distance, ddof=1), rel=1e-12)
    assert summary["metrics"]["identity_distance"]["n"] == 12
    for quantity in ("precision", "recall", "iprecision", "irecall"):
        for k in (1, 2, 3, 4):
            assert table[f"{quantity}_k{k}"].mean() == expected[quantity][k]
            assert summary["metrics"]["ipr"][quantity][f"k{k}"]["mean"] == expected[quantity][k]
    assert result.summary["metrics"]["fid"]["value"] == summary["metrics"]["fid"]["value"]


def test_identity_chips_of_restorations_use_the_ground_truth_landmarks(restoration_folders):
    root = restoration_folders
    embedder = LandmarkFakeEmbedder()
    networks = Networks(fid_inception=None, lpips_backbone=None, identity_embedder=lambda: embedder)
    options = EvalOptions(batch_size=5, ks=(1, 2), progress=False, ci_level=None)
    result = evaluate_folders(root / "pred", root / "gt", metrics=["ipr"], networks=networks, options=options)
    gts = [np.asarray(Image.open(root / "gt" / f).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC))
           for f in result.per_image["gt_file"]]
    expected = embedder.landmarks(np.stack(gts))  # the ground truth's, image by image
    calls = [r for r in embedder.received]
    assert len(calls) == 2 * 3  # ground truth and restorations, 3 batches of at most 5 each
    np.testing.assert_array_equal(np.concatenate(calls[:3]), expected)
    np.testing.assert_array_equal(np.concatenate(calls[3:]), expected)
    assert result.summary["metrics"]["ipr"]["landmarks"] == {
        "source": "ground truth", "images": 12, "detector_fallbacks": int((expected[:, 10] == 1).sum())}


def test_mismatched_folders_name_the_differences(tmp_path):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    write_images(tmp_path / "pred", {n: image for n in ("a.png", "b.png", "only_pred.png")})
    write_images(tmp_path / "gt", {n: image for n in ("a.jpg", "b.jpg", "only_gt_1.jpg", "only_gt_2.jpg")})
    with pytest.raises(DataError) as error:
        pair_images(tmp_path / "pred", tmp_path / "gt")
    message = str(error.value)
    assert "1 only in" in message and "only_pred" in message and "2 only in" in message and "only_gt_1, only_gt_2" in message
    assert str(tmp_path / "pred") in message and "\n" not in message
    with pytest.raises(DataError, match="only_pred"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", metrics=["psnr"], networks=Networks(None, None, None))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bad_images_are_one_line_errors(tmp_path, num_workers):
    image = np.full((16, 16, 3), 128, dtype=np.uint8)
    write_images(tmp_path / "gt", {n: image for n in ("a.png", "b.png", "c.png")})
    write_images(tmp_path / "pred", {"a.png": image, "c.png": image})
    (tmp_path / "pred" / "b.png").write_bytes(b"not an image")
    options = EvalOptions(num_workers=num_workers, progress=False, batch_size=1, ci_level=None)
    with pytest.raises(DataError, match=r"pred/b\.png: not an image file") as error:
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", metrics=["psnr"], networks=Networks(None, None, None),
                         options=options)
    assert "\n" not in str(error.value)
    write_images(tmp_path / "pred", {"b.png": image[:12]})
    with pytest.raises(DataError, match=r"b\.png vs .*b\.png: sizes differ"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", metrics=["psnr"], networks=Networks(None, None, None),
                         options=options)
    with pytest.raises(ConfigError, match="allowed: psnr, ssim"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt", metrics=["psnr", "niqe"], networks=Networks(None, None, None))


def test_identity_embeddings_resize_to_embedder_size(tmp_path):
    rng = np.random.default_rng(6)
    faces = {f"{i}.png": rng.integers(0, 256, size=(50, 50, 3), dtype=np.uint8) for i in range(5)}
    write_images(tmp_path, faces)
    ours = identity_embeddings(tmp_path, FakeEmbedder(), batch_size=2, progress=False)
    expected = FakeEmbedder()(np.stack([np.asarray(Image.fromarray(f).resize((32, 32), Image.Resampling.BICUBIC))
                                        for f in faces.values()]))
    np.testing.assert_array_equal(ours, expected)


def test_cached_features_are_computed_once_per_content_and_network_and_follow_the_requested_order(tmp_path):
    from faceres.metrics.fid import cached_features

    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, value in (("a.png", 10), ("b.png", 200)):
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / name)
    paths = sorted(folder.glob("*.png"))
    calls = []

    def compute(order):
        calls.append(order)
        return np.array([[float(p.name[0] == "b")] for p in order])

    cache = tmp_path / "cache"
    first = cached_features(paths, "net-1", lambda: compute(paths), cache)
    again = cached_features(paths[::-1], "net-1", lambda: compute(paths[::-1]), cache)
    assert len(calls) == 1 and first.tolist() == [[0.0], [1.0]] and again.tolist() == [[1.0], [0.0]]
    cached_features(paths, "net-2", lambda: compute(paths), cache)  # another network: computed
    Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(folder / "a.png")  # new content: computed
    cached_features(paths, "net-1", lambda: compute(paths), cache)
    cached_features(paths, None, lambda: compute(paths), cache)  # no key: never cached
    assert len(calls) == 4
