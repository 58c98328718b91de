"""Degradation synthesis: exact replay, parameter statistics, ops against independent references
(numpy formulas, OpenCV, PIL, torch's interpolate, finite differences), the JPEG model against libjpeg."""

from __future__ import annotations

import hashlib
import io
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from faceres.core import streams

from faceres.config.schema import BFRConfig, SRConfig
from faceres.degrade.sampling import (
    BFR_UNIFORMS,
    DEGRADE_VERSION,
    MANIFEST_FIELDS,
    BFRParams,
    OnlineBFRParams,
    clamp_to_ranges,
    image_seed,
    make_generator,
    params_from_row,
    sample_bfr,
    sample_online,
)
from faceres.degrade.chain import apply_bfr, apply_bfr_tensor, bfr_kernel, degrade_batch, replay
from faceres.degrade.ops import blur, gaussian_kernels, resize, scaled_size, to_float
from faceres.degrade.jpeg import jpeg, jpeg_real_uint8, quant_tables
from faceres.degrade import chain as pipeline
from faceres.degrade.ops import add_noise, blur_separable, gaussian_kernel_1d, resize_reference
from faceres.data.prepare import center_crop_resize
from faceres.core.errors import ConfigError, DataError
from faceres.core.imageio import read_rgb
from tests.conftest import CELEBA, repo_params

# --------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def bfr_cfg() -> BFRConfig:
    from faceres.config.schema import config_from_dict

    return config_from_dict(repo_params()).degrade.bfr


def _faces(count: int, size: int) -> torch.Tensor:
    """Real CelebA faces, centre square crop resized as the data stage does -> (count, 3, size, size) uint8."""
    files = sorted((CELEBA / "images").glob("*.jpg"))[:count]
    if len(files) < count:
        pytest.skip(f"{CELEBA} not present (the shared CelebA sample sits beside the repo)")
    faces = [center_crop_resize(read_rgb(name), size, upscale=True, name=str(name)) for name in files]
    return torch.stack([torch.from_numpy(np.array(face)).permute(2, 0, 1) for face in faces])


@pytest.fixture(scope="module")
def faces128() -> torch.Tensor:
    return _faces(6, 128)


def _record(**changes) -> BFRParams:
    base = dict(
        task="bfr", image_id="x", seed=123, version=DEGRADE_VERSION, height=64, width=64, kernel="aniso",
        sigma_x=2.0, sigma_y=0.7, theta=0.9, kernel_size=11, scale=2.3, lr_height=28, lr_width=28,
        noise_sigma=8.0, jpeg_quality=70,
    )
    base.update(changes)
    return BFRParams(**base)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a.double() - b.double()) ** 2).mean(dim=(-3, -2, -1))
    return 10 * torch.log10(1.0 / mse)


# --------------------------------------------------------------------------------------------------------
# Seeds, records, replay


def _keys(count: int, base: int = 0) -> torch.Tensor:
    """`count` per-image stream keys (faceres.core.streams) for sample_online."""
    return streams.keys_for(base, torch.arange(count))


def test_image_seed_is_a_stable_hash_not_pythons():
    expected = int.from_bytes(hashlib.sha256(b'[7, "bfr", "000123.jpg"]').digest()[:8], "big") & (2**63 - 1)
    assert image_seed(7, "bfr", "000123.jpg") == expected
    assert image_seed(0, "bfr", "a") == 7039500757101375350  # pinned: a change breaks every manifest
    seeds = {image_seed(s, t, i) for s in (0, 1) for t in ("bfr", "sr8") for i in ("a", "b")}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ConfigError, match="seed"):
        image_seed("0", "bfr", "a")


def test_degrade_batch_is_deterministic_and_replayable(faces128, bfr_cfg):
    ids = [f"{i:06d}.jpg" for i in range(len(faces128))]
    out1, lr1, rows1 = degrade_batch(faces128, ids, "bfr", bfr_cfg, 3, 128)
    out2, _, rows2 = degrade_batch(faces128.clone(), ids, "bfr", bfr_cfg, 3, 128)
    assert lr1 is None and out1.dtype == torch.uint8 and out1.shape == faces128.shape
    assert out1.numpy().tobytes() == out2.numpy().tobytes() and rows1 == rows2
    assert {r["kernel"] for r in rows1} == {"iso", "aniso"}  # both blur paths are exercised below
    # any sub-batch, in any order, gives each image the same bytes
    sub, _, _ = degrade_batch(faces128[[4, 1]], [ids[4], ids[1]], "bfr", bfr_cfg, 3, 128)
    assert torch.equal(sub[0], out1[4]) and torch.equal(sub[1], out1[1])
    # replay from the manifest row alone, with every value a string as read back from a CSV
    for i, row in enumerate(rows1):
        csv_row = {key: repr(value) if isinstance(value, float) else str(value) for key, value in row.items()}
        again, lr = replay(csv_row, faces128[i])
        assert lr is None and torch.equal(again, out1[i])
    # another global seed gives other degradations
    other, _, _ = degrade_batch(faces128, ids, "bfr", bfr_cfg, 4, 128)
    assert not torch.equal(other, out1)


def test_sr_tasks_sizes_reference_and_replay(faces128):
    for task, factor in (("sr8", 8), ("sr16", 16)):
        inputs, lrs, rows = degrade_batch(faces128[:3], ["a", "b", "c"], task, SRConfig(factor), 0, 128)
        assert inputs.shape == (3, 3, 128, 128) and inputs.dtype == torch.uint8
        assert [tuple(lr.shape) for lr in lrs] == [(3, 128 // factor, 128 // factor)] * 3
        assert rows[0]["lr_height"] == 128 // factor and rows[0]["task"] == task
        # reference: torch's own antialiased bicubic (PIL's filter), rounded to 8 bits
        x = to_float(faces128[:3])
        lr_ref = F.interpolate(x, size=(128 // factor,) * 2, mode="bicubic", antialias=True)
        lr_ref = (lr_ref * 255).round().clamp(0, 255)
        assert (torch.stack(lrs).float() - lr_ref).abs().max() <= 1
        up_ref = F.interpolate(lr_ref / 255, size=(128, 128), mode="bicubic", antialias=True)
        assert (inputs.float() - (up_ref * 255).round().clamp(0, 255)).abs().max() <= 1
        again, lr = replay(rows[1], faces128[1])
        assert torch.equal(again, inputs[1]) and torch.equal(lr, lrs[1])
    with pytest.raises(DataError, match="not divisible"):
        degrade_batch(faces128[:1, :, :120, :120], ["a"], "sr16", SRConfig(16), 0, 120)


def test_manifest_rows_round_trip_and_bad_rows_are_named(bfr_cfg):
    params = sample_bfr(bfr_cfg, make_generator(5), image_id="im", seed=5, size=(512, 512))
    row = params.to_row()
    assert tuple(row) == MANIFEST_FIELDS["bfr"]
    as_text = {k: repr(v) if isinstance(v, float) else str(v) for k, v in row.items()}
    assert params_from_row(as_text) == params
    with pytest.raises(DataError, match="jpeg_quality"):
        params_from_row({**row, "jpeg_quality": None})
    with pytest.raises(DataError, match="sigma_x = 'abc'"):
        params_from_row({**row, "sigma_x": "abc"})
    with pytest.raises(DataError, match="version"):
        params_from_row({**row, "version": DEGRADE_VERSION + 1})
    with pytest.raises(DataError, match="kernel"):
        params_from_row({**row, "kernel": "box"})
    with pytest.raises(DataError, match="manifest row: task = 'sr4': allowed: bfr, sr8, sr16"):
        params_from_row({**row, "task": "sr4"})


def test_replay_rejects_a_mismatched_image(faces128, bfr_cfg):
    _, _, rows = degrade_batch(faces128[:1], ["a"], "bfr", bfr_cfg, 0, 128)
    with pytest.raises(DataError, match="image a: 64x64 px but its record says 128x128"):
        replay(rows[0], faces128[0, :, :64, :64])


def test_bad_inputs_get_one_line_errors(faces128, bfr_cfg):
    cases = [
        (dict(task="deblur"), ConfigError, "task = 'deblur': allowed: bfr, sr8, sr16"),
        (dict(images_uint8=to_float(faces128)), DataError, "dtype torch.float32: allowed: torch.uint8"),
        (dict(images_uint8=faces128[:, :1]), DataError, r"shape \(6, 1, 128, 128\): allowed: \(B, 3, H, W\)"),
        (dict(images_uint8=faces128[0]), DataError, "shape"),
        (dict(image_ids=["a"]), DataError, "6 images but 1 image ids"),
        (dict(image_ids=["a"] * 6), DataError, "unique"),
        (dict(resolution=256), DataError, "allowed: 256x256"),
        (dict(task_cfg=SRConfig(8)), ConfigError, "degrade.bfr: got a SRConfig"),
    ]
    base = dict(images_uint8=faces128, image_ids=list("abcdef"), task="bfr", task_cfg=bfr_cfg,
                global_seed=0, resolution=128)
    for change, error, message in cases:
        with pytest.raises(error, match=message) as info:
            degrade_batch(**{**base, **change})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="jpeg mode = 'png'"):
        jpeg(to_float(faces128[:1]), 80, mode="png")


# --------------------------------------------------------------------------------------------------------
# Sampling


def test_sampled_parameters_cover_the_ranges_with_the_expected_statistics(bfr_cfg):
    cfg = bfr_cfg.at_resolution(256)  # half of the reference: blur halves, the rest is relative
    assert cfg.blur_sigma == (0.05, 5.0) and cfg.kernel_size == 21
    draws = [
        sample_bfr(cfg, make_generator(image_seed(0, "bfr", str(i))), image_id=str(i), seed=0, size=(256, 256))
        for i in range(4000)
    ]
    column = lambda name: np.array([getattr(d, name) for d in draws], dtype=float)  # noqa: E731
    aniso = np.array([d.kernel == "aniso" for d in draws])
    assert abs(aniso.mean() - cfg.anisotropic_prob) < 0.03
    for name, (low, high) in (("sigma_x", cfg.blur_sigma), ("scale", cfg.downsample), ("noise_sigma", cfg.noise_sigma)):
        values = column(name)
        se = (high - low) / math.sqrt(12 * len(values))
        assert low <= values.min() and values.max() <= high, name
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low), name
        assert abs(values.mean() - (low + high) / 2) < 4 * se, name
    sigma_y, theta = column("sigma_y"), column("theta")
    assert np.array_equal(sigma_y[~aniso], column("sigma_x")[~aniso]) and np.all(theta[~aniso] == 0)
    assert cfg.blur_sigma[0] <= sigma_y[aniso].min() and sigma_y[aniso].max() <= cfg.blur_sigma[1]
    assert 0 <= theta[aniso].min() and theta[aniso].max() < math.pi
    assert abs(theta[aniso].mean() - math.pi / 2) < 4 * math.pi / math.sqrt(12 * aniso.sum())
    quality = column("jpeg_quality")
    assert set(quality.astype(int)) == set(range(60, 101))  # integers, every value reachable
    assert abs(quality.mean() - 80) < 4 * 41 / math.sqrt(12 * len(quality))
    assert {d.kernel_size for d in draws} == {21}
    assert all(d.lr_height == scaled_size(256, d.scale) == round(256 / d.scale) for d in draws[:50])


def test_sample_online_uses_the_same_ranges(bfr_cfg):
    cfg = bfr_cfg.at_resolution(128)
    params = sample_online(cfg, _keys(2000, 0), (16, 16))
    assert abs(params.anisotropic.float().mean().item() - 0.5) < 0.04
    for name, (low, high) in (("sigma_x", cfg.blur_sigma), ("scale", cfg.downsample), ("jpeg_quality", (60, 100))):
        values = getattr(params, name)
        assert low <= values.min() and values.max() <= high
        assert abs(values.double().mean().item() - (low + high) / 2) < 0.05 * (high - low)
    assert params.noise.shape == (2000, 3, 20, 20)  # the largest low-resolution image: 16 / 0.8
    assert abs(params.noise.std().item() - 1) < 0.01
    assert sample_online(cfg, _keys(2), (128, 100)).noise.shape == (2, 3, 160, 125)


def test_clamp_to_ranges_projects_in_place(bfr_cfg):
    cfg = bfr_cfg.at_resolution(128)
    params = sample_online(cfg, _keys(4, 1), (128, 128)).requires_grad_()
    with torch.no_grad():
        params.sigma_x += torch.tensor([-10.0, 10.0, 0.0, 0.0])
        params.theta += torch.tensor([4.0, -4.0, 0.0, 0.0])
        params.scale += torch.tensor([-5.0, 50.0, 0.0, 0.0])
        params.noise_sigma -= 100.0
        params.jpeg_quality += 100.0
    theta_before = params.theta.detach().clone()
    clamp_to_ranges(params, cfg)
    assert params.sigma_x[0] == cfg.blur_sigma[0] and params.sigma_x[1] == cfg.blur_sigma[1]
    assert params.scale[0] == cfg.downsample[0] and params.scale[1] == cfg.downsample[1]
    assert torch.all(params.noise_sigma == 0) and torch.all(params.jpeg_quality == 100)
    assert torch.all((params.theta >= 0) & (params.theta < math.pi))
    assert torch.allclose(torch.cos(2 * params.theta), torch.cos(2 * theta_before), atol=1e-5)  # same kernel
    assert all(t.is_leaf and t.requires_grad for t in params.continuous())


# --------------------------------------------------------------------------------------------------------
# Blur


def _numpy_gaussian(sigma_x: float, sigma_y: float, theta: float, size: int) -> np.ndarray:
    """BasicSR's bivariate_Gaussian: covariance R diag(sx^2, sy^2) R^T, grid x = column, y = row."""
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T)
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=float)
    xx, yy = np.meshgrid(ax, ax)
    xy = np.stack([xx, yy], -1)
    kernel = np.exp(-0.5 * np.einsum("hwi,ij,hwj->hw", xy, inv, xy))
    return kernel / kernel.sum()


@pytest.mark.parametrize("sx, sy, theta", [(2.5, 2.5, 0.0), (3.0, 1.0, 0.6), (0.8, 4.0, 2.9), (0.05, 0.05, 0.0)])
def test_gaussian_kernels_match_the_numpy_formula(sx, sy, theta):
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    kernel = gaussian_kernels(t(sx), t(sy), t(theta), 11)[0].numpy()
    assert abs(kernel.sum() - 1) < 1e-12
    np.testing.assert_allclose(kernel, _numpy_gaussian(sx, sy, theta, 11), atol=1e-12)
    if sx == sy:  # isotropic = outer product of OpenCV's 1D Gaussian
        g = cv2.getGaussianKernel(11, sx, cv2.CV_64F)
        np.testing.assert_allclose(kernel, g @ g.T, atol=1e-12)
        np.testing.assert_allclose(gaussian_kernel_1d(t(sx), 11)[0].numpy(), g[:, 0], atol=1e-15)


def test_blur_of_an_impulse_is_the_kernel():
    image = torch.zeros(1, 3, 48, 40)
    image[:, :, 20, 17] = 1.0
    record = _record(kernel="aniso", sigma_x=3.0, sigma_y=1.2, theta=0.7, kernel_size=15)
    kernel = bfr_kernel(record)
    out = blur(image, kernel)
    for c in range(3):
        assert torch.allclose(out[0, c, 13:28, 10:25], kernel, atol=1e-7)
    assert out.sum(dim=(-2, -1)).sub(1).abs().max() < 1e-5  # nothing reached the border
    g = gaussian_kernel_1d(torch.tensor([2.0], dtype=torch.float64), 15).float()
    sep = blur_separable(image, g)
    assert torch.allclose(sep[0, 1, 13:28, 10:25], torch.outer(g[0], g[0]), atol=1e-7)


def test_blur_matches_opencv_filter2d_on_a_photo(faces128):
    image = to_float(faces128[:2, :, :100, :90])  # non-square, not a multiple of anything
    iso = _record(kernel="iso", sigma_x=4.0, sigma_y=4.0, theta=0.0, kernel_size=21)
    kernels = torch.stack([bfr_kernel(_record(kernel_size=21)), bfr_kernel(iso)])
    g = gaussian_kernel_1d(torch.tensor([4.0], dtype=torch.float64), 21).float()
    fft = blur(image, kernels)
    separable = blur_separable(image[1:], g)
    for i in range(2):
        hwc = image[i].permute(1, 2, 0).numpy()
        reference = cv2.filter2D(hwc, -1, kernels[i].numpy(), borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(fft[i].permute(1, 2, 0).numpy(), reference, atol=2e-6)
    np.testing.assert_allclose(separable[0].permute(1, 2, 0).numpy(), reference, atol=2e-6)


def test_gaussian_kernels_are_centro_symmetric_as_blur_assumes():
    # blur() takes the symmetry on trust (checking it would read the kernels back to the host every step)
    sigma = torch.tensor([0.3, 2.0, 7.5], dtype=torch.float64)
    kernels = gaussian_kernels(sigma, sigma.flip(0), torch.tensor([0.0, 0.7, 2.9], dtype=torch.float64), 21)
    assert torch.allclose(kernels, kernels.flip(-2, -1), rtol=0, atol=1e-15)


def test_blur_rejects_oversized_kernels():
    with pytest.raises(DataError, match="needs images larger than 20 px"):
        blur(torch.zeros(1, 3, 16, 16), bfr_kernel(_record(kernel_size=41)))


# --------------------------------------------------------------------------------------------------------
# Resize and noise


@pytest.mark.parametrize("kind", ["bilinear", "bicubic"])
def test_resize_matches_pil_and_torch(kind):
    rng = np.random.default_rng(0)
    plane = rng.random((61, 50)).astype(np.float32)
    x = torch.from_numpy(plane)[None, None].double()
    for size in ((23, 19), (90, 77), (61, 50)):
        pil = Image.fromarray(plane, "F").resize(size[::-1], Image.BILINEAR if kind == "bilinear" else Image.BICUBIC)
        np.testing.assert_allclose(resize(x, size, kind=kind)[0, 0].numpy(), np.asarray(pil), atol=2e-6)
    for scale in (2.7, 1.3, 0.8):
        ref = F.interpolate(x, scale_factor=1 / scale, mode=kind, antialias=True, recompute_scale_factor=False)
        size = tuple(ref.shape[-2:])
        assert torch.allclose(resize(x, size, scale, kind), ref, atol=1e-12)
        sy = torch.tensor(scale, dtype=torch.float64)
        assert torch.allclose(resize_reference(x, size, sy, sy, kind), ref, atol=1e-12)


def test_downsampled_sizes():
    assert [scaled_size(512, s) for s in (0.8, 1.0, 2.5, 3.3, 7.99, 8.0)] == [640, 512, 205, 155, 64, 64]
    assert scaled_size(128, 8.0) == 16 and scaled_size(3, 8.0) == 1


def test_resize_gradient_wrt_scale_matches_finite_differences():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 40, 36, dtype=torch.float64, generator=generator)
    for scale0, size in ((3.1, (13, 11)), (0.9, (44, 40))):
        weight = torch.rand(1, 3, *size, dtype=torch.float64, generator=generator)
        scale = torch.tensor(scale0, dtype=torch.float64, requires_grad=True)
        (resize(x, size, scale) * weight).sum().backward()
        eps = 1e-6
        f = lambda s: (resize(x, size, s) * weight).sum().item()  # noqa: E731
        numeric = (f(scale0 + eps) - f(scale0 - eps)) / (2 * eps)
        assert scale.grad.item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)
        assert scale.grad.item() != 0


def test_noise_has_the_requested_std_and_comes_from_the_image_generator(monkeypatch):
    flat = torch.full((1, 3, 200, 200), 0.5)
    noisy = add_noise(flat, 12.0, torch.randn(1, 3, 200, 200, generator=torch.Generator().manual_seed(0)))
    assert (noisy - 0.5).std().item() == pytest.approx(12 / 255, rel=0.01)
    # in the pipeline: delta blur, scale 1 and a pass-through codec leave exactly the generator's noise field,
    # drawn right after the parameters
    monkeypatch.setattr(pipeline, "jpeg_real_uint8", lambda image, quality: image)
    record = _record(kernel="iso", sigma_x=0.01, sigma_y=0.01, theta=0.0, scale=1.0, lr_height=64, lr_width=64,
                     noise_sigma=20.0, jpeg_quality=90)
    image = torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)
    out, _ = replay(record.to_row(), image)
    generator = make_generator(record.seed)
    torch.rand(BFR_UNIFORMS, generator=generator, dtype=torch.float64)
    field = torch.randn(3, 64, 64, generator=generator)
    expected = (to_float(image[0]) + torch.tensor(20.0) / 255 * field).clamp(0, 1).mul(255).round()
    assert torch.equal(out.float(), expected)


# --------------------------------------------------------------------------------------------------------
# JPEG


def test_real_jpeg_is_libjpeg_as_pil_and_opencv_run_it(faces128):
    for quality in (60, 83, 100):
        for image in faces128[:3, :, :75, :90]:  # odd sizes: partial MCUs
            ours = jpeg_real_uint8(image, quality)
            hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
            buffer = io.BytesIO()
            Image.fromarray(hwc).save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
            pil = np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            ok, encoded = cv2.imencode(".jpg", hwc[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            opencv = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
            assert np.array_equal(ours.permute(1, 2, 0).numpy(), pil)
            assert np.array_equal(pil, opencv)


def test_quant_tables_are_libjpegs(faces128):
    hwc = np.ascontiguousarray(faces128[0].permute(1, 2, 0).numpy())
    for quality in (1, 10, 49, 50, 60, 75, 95, 100):
        buffer = io.BytesIO()
        Image.fromarray(hwc).save(buffer, "JPEG", quality=quality)
        tables = Image.open(io.BytesIO(buffer.getvalue())).quantization  # natural order (Pillow >= 8.3)
        luma, chroma = quant_tables(torch.tensor([float(quality)]))
        assert luma[0].flatten().int().tolist() == list(tables[0]), quality
        assert chroma[0].flatten().int().tolist() == list(tables[1]), quality


def test_differentiable_jpeg_is_close_to_libjpeg(faces128):
    images = to_float(faces128)
    for crop in (128, 75):
        x = images[..., :crop, :crop]
        for quality in (60, 75, 90, 100):
            real = jpeg(x, quality, "real")
            diff = jpeg(x, quality, "diff")
            assert _psnr(diff, real).min() > 40, (crop, quality)
            if quality < 100:  # the model's error is well below the compression error it models
                assert (_psnr(diff, real) > _psnr(real, x) + 3).all(), (crop, quality)
    cubic = jpeg(images, 75, "diff", rounding="cubic")
    assert _psnr(cubic, jpeg(images, 75, "real")).min() > 30


def test_differentiable_jpeg_gradients_reach_image_and_quality(faces128):
    x = to_float(faces128[:2]).requires_grad_()
    quality = torch.tensor([65.0, 85.0], requires_grad=True)
    error = ((jpeg(x, quality, "diff") - x.detach()) ** 2).sum()
    error.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(quality.grad).all()
    assert (quality.grad < 0).all()  # a higher quality lowers the compression error
    q100 = torch.tensor([100.0], requires_grad=True)
    jpeg(x[:1].detach(), q100, "diff").sum().backward()
    assert q100.grad.item() != 0  # the projection keeps q <= 100; the gradient still points somewhere


# --------------------------------------------------------------------------------------------------------
# Online, differentiable pipeline


def test_online_gradients_reach_every_parameter(faces128, bfr_cfg):
    cfg = bfr_cfg.at_resolution(128)
    params = sample_online(cfg, _keys(4, 3), (128, 128))
    params.anisotropic[:] = torch.tensor([True, True, False, False])
    params.requires_grad_()
    clean = to_float(faces128[:4])
    degraded = apply_bfr_tensor(clean, params)
    assert degraded.shape == clean.shape and 0 <= degraded.min() and degraded.max() <= 1
    loss = (degraded - clean).abs().mean()
    loss.backward()
    for name in params.CONTINUOUS:
        grad = getattr(params, name).grad
        assert torch.isfinite(grad).all(), name
        used = slice(0, 2) if name in ("sigma_y", "theta") else slice(0, 4)  # isotropic: no sigma_y / theta
        assert (grad[used] != 0).all(), (name, grad)
    assert torch.all(params.sigma_y.grad[2:] == 0) and torch.all(params.theta.grad[2:] == 0)
    # one PGD ascent step, projected, makes the degradation harder
    with torch.no_grad():
        for tensor, step in zip(params.continuous(), (0.2, 0.2, 0.1, 0.3, 2.0, 5.0)):
            tensor += step * tensor.grad.sign()
    clamp_to_ranges(params, cfg)
    harder = (apply_bfr_tensor(clean, params) - clean).abs().mean()
    assert harder > loss


def test_blur_gradient_wrt_sigma_and_theta_matches_finite_differences():
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weight = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def f(sx, sy, th):
        return (blur(x, gaussian_kernels(sx, sy, th, 9)) * weight).sum()

    point = [torch.tensor([v], dtype=torch.float64, requires_grad=True) for v in (1.7, 0.9, 0.4)]
    f(*point).backward()
    for i in range(3):
        eps = 1e-6
        up = [p.detach().clone() for p in point]
        down = [p.detach().clone() for p in point]
        up[i] += eps
        down[i] -= eps
        numeric = (f(*up) - f(*down)).item() / (2 * eps)
        assert point[i].grad.item() == pytest.approx(numeric, rel=1e-5), i


def test_online_and_offline_paths_agree(faces128):
    record = _record(height=128, width=128, lr_height=56, lr_width=56, kernel_size=11)
    field = torch.randn(3, 56, 56, generator=torch.Generator().manual_seed(0))
    clean = to_float(faces128[:1])
    offline = apply_bfr(clean, [record], [torch.Generator().manual_seed(0)], jpeg="diff")
    as_tensor = lambda v: torch.tensor([float(v)])  # noqa: E731
    online_params = OnlineBFRParams(
        anisotropic=torch.tensor([True]), sigma_x=as_tensor(record.sigma_x), sigma_y=as_tensor(record.sigma_y),
        theta=as_tensor(record.theta), scale=as_tensor(record.scale), noise_sigma=as_tensor(record.noise_sigma),
        jpeg_quality=as_tensor(record.jpeg_quality), noise=F.pad(field, (0, 9, 0, 9))[None], kernel_size=11,
    )
    online = apply_bfr_tensor(clean, online_params, jpeg="diff")
    assert (online - offline).abs().max() < 2.5 / 255  # float32 vs float64 kernel: rare rounding flips
    assert (online - offline).abs().mean() < 0.05 / 255
    real = apply_bfr_tensor(clean, online_params, jpeg="real")
    assert _psnr(real, online).item() > 40


def test_the_batched_canvas_degradation_matches_the_image_by_image_path(faces128, bfr_cfg):
    # The training path degrades a batch of different low-resolution sizes on one canvas with device-side
    # sizes; the offline code path goes image by image with host sizes. Same operations, so the outputs and
    # the gradients w.r.t. every parameter must agree (up to float32 rounding and rare JPEG rounding flips).
    cfg = bfr_cfg.at_resolution(64)
    clean = F.interpolate(to_float(faces128[:4]), size=(64, 64), mode="area").repeat(4, 1, 1, 1)
    params = sample_online(cfg, _keys(16, 7), (64, 64))
    with torch.no_grad():  # cover the whole scale range, the smallest scale (largest canvas content) included
        params.scale.copy_(torch.linspace(cfg.downsample[0], cfg.downsample[1], 16))
        params.scale[[3, 9]] = torch.tensor([1.004, 0.996])  # round(64 / scale) = 64: resize copies the image
    results = []
    for path in (pipeline.apply_bfr_tensor, lambda x, p: pipeline._degrade_each(x, p, "diff", "ste")):
        leaf = params.to("cpu").requires_grad_()
        out = path(clean, leaf)
        (out * torch.linspace(0, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), {n: getattr(leaf, n).grad for n in leaf.CONTINUOUS}))
    (batched, grads_batched), (each, grads_each) = results
    difference = (batched - each).abs()
    assert difference.mean() < 0.02 / 255 and difference.max() < 2.5 / 255
    # Gradients on the images whose size changes. For images 3 and 9 torch's resize kernel copies the image in
    # the forward pass but its backward pass resamples with the scale, so the image-by-image gradient there is
    # not the gradient of its own forward; the batched path's is (the copy's).
    resized = [i for i in range(16) if i not in (3, 9)]
    for name in params.CONTINUOUS:
        torch.testing.assert_close(grads_batched[name][resized], grads_each[name][resized], rtol=0.05, atol=1e-3,
                                   msg=name)
    assert torch.all(grads_batched["scale"][[3, 9]] == 0)  # a copy does not depend on the scale
