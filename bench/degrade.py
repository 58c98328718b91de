"""Throughput of the offline `bfr` degradation (real JPEG) against an OpenCV implementation of the same ops.

The peer is what BasicSR / GFPGAN do: a numpy Gaussian kernel (BasicSR's bivariate formula) applied with
cv2.filter2D (BORDER_REFLECT_101, DFT-based for large kernels), cv2.resize INTER_LINEAR down and back,
numpy Gaussian noise, cv2.imencode / imdecode JPEG. Both pipelines get the same sampled parameters and
images (CelebA faces upscaled to the resolution, or random pixels where the shared sample is missing), and
both start from uint8 and end at uint8. Figures are images per second; the machine is shared, so numbers
move between runs: compare the two columns of one run.

    .venv/bin/python bench/degrade.py [--resolution 512] [--images 32] [--rounds 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba-10k" / "images"


def load_faces(count: int, resolution: int) -> torch.Tensor:
    """(count, 3, R, R) uint8: CelebA faces cropped and resized as the data stage does, or random pixels."""
    from faceres.data.prepare import center_crop_resize
    from faceres.core.imageio import read_rgb

    files = sorted(glob.glob(str(CELEBA / "*.jpg")))[:count]
    if len(files) < count:
        return torch.randint(0, 256, (count, 3, resolution, resolution), dtype=torch.uint8)
    faces = [center_crop_resize(read_rgb(name), resolution, upscale=True, name=name) for name in files]
    return torch.stack([torch.from_numpy(np.array(face)).permute(2, 0, 1) for face in faces])


# --------------------------------------------------------------------------------------------------------
# The OpenCV peer (BasicSR / GFPGAN style)


def opencv_kernel(sigma_x: float, sigma_y: float, theta: float, size: int) -> np.ndarray:
    """BasicSR's bivariate_Gaussian (isotropic when sigma_x == sigma_y)."""
    if sigma_x == sigma_y:  # BasicSR builds the isotropic one from cv2.getGaussianKernel's formula
        g = cv2_module().getGaussianKernel(size, sigma_x, cv2_module().CV_64F)
        return (g @ g.T).astype(np.float32)
    d = np.diag([sigma_x**2, sigma_y**2])
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(u @ d @ u.T)
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    xy = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.sum(np.dot(xy, inv) * xy, axis=2))
    return (kernel / kernel.sum()).astype(np.float32)


def cv2_module():
    import cv2

    return cv2


def opencv_bfr(image_hwc_bgr: np.ndarray, row: dict, rng: np.random.Generator) -> np.ndarray:
    cv2 = cv2_module()
    img = image_hwc_bgr.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    kernel = opencv_kernel(row["sigma_x"], row["sigma_y"], row["theta"], row["kernel_size"])
    img = cv2.filter2D(img, -1, kernel)
    img = cv2.resize(img, (row["lr_width"], row["lr_height"]), interpolation=cv2.INTER_LINEAR)
    img = img + np.float32(rng.standard_normal(img.shape)) * np.float32(row["noise_sigma"] / 255.0)
    img = np.clip(img, 0.0, 1.0)
    img8 = np.clip((img * 255.0).round(), 0, 255).astype(np.uint8)  # what BasicSR passes imencode, explicitly
    ok, buf = cv2.imencode(".jpg", img8, [int(cv2.IMWRITE_JPEG_QUALITY), int(row["jpeg_quality"])])
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32) / 255.0
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip((img * 255.0).round(), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# Runs


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2_module().setNumThreads(threads)


def run_ours(images: torch.Tensor, rows: list[dict], resolution: int) -> None:
    """degrade_batch in batches of 8: draws the same records as `rows` (same ids, seed 0), then degrades."""
    from faceres.config.schema import load_config
    from faceres.degrade.chain import degrade_batch

    cfg = load_config(REPO / "params.yaml").degrade.bfr
    for i in range(0, len(rows), 8):
        ids = [row["image_id"] for row in rows[i : i + 8]]
        degrade_batch(images[i : i + 8], ids, "bfr", cfg, 0, resolution)


def run_opencv(images: torch.Tensor, rows: list[dict], resolution: int) -> None:
    rng = np.random.default_rng(0)
    for image, row in zip(images, rows):
        array = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])  # RGB CHW -> BGR HWC
        opencv_bfr(array, row, rng)


RUNNERS = {"ours": run_ours, "opencv": run_opencv}
_SHARED: dict = {}


def _init_worker(images: torch.Tensor, rows: list[dict], resolution: int, threads: int) -> None:
    _set_threads(threads)
    _SHARED.update(images=images, rows=rows, resolution=resolution)
    for name in RUNNERS:  # warm-up: imports, caches
        RUNNERS[name](images[:2], rows[:2], resolution)


def _work(job: tuple[str, int, int]) -> None:
    name, start, step = job
    RUNNERS[name](_SHARED["images"][start::step], _SHARED["rows"][start::step], _SHARED["resolution"])


def best_rates(images, rows, resolution: int, rounds: int, pool=None, workers: int = 0) -> dict[str, float]:
    """Images per second of each pipeline, best of `rounds` interleaved rounds (load changes hit both)."""
    best = {name: 0.0 for name in RUNNERS}
    if pool is None:
        for name in RUNNERS:
            RUNNERS[name](images[:2], rows[:2], resolution)
    for _ in range(rounds):
        for name in RUNNERS:
            start = time.perf_counter()
            if pool is None:
                RUNNERS[name](images, rows, resolution)
            else:
                pool.map(_work, [(name, i, workers) for i in range(workers)])
            best[name] = max(best[name], len(rows) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting; best counts")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()

    from faceres.config.schema import load_config
    from faceres.degrade.chain import degrade_batch

    images = load_faces(args.images, args.resolution)
    cfg = load_config(REPO / "params.yaml").degrade.bfr
    ids = [f"{i:06d}" for i in range(args.images)]
    rows = degrade_batch(images, ids, "bfr", cfg, 0, args.resolution)[2]
    aniso = sum(r["kernel"] == "aniso" for r in rows)
    print(
        f"bfr degradation (real JPEG), {args.images} images at {args.resolution} px ({aniso} anisotropic, kernel "
        f"{rows[0]['kernel_size']}), torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; best of {args.rounds} interleaved rounds"
    )
    print(f"{'setting':<30}{'ours img/s':>12}{'opencv img/s':>14}{'ratio':>8}")

    def report(label: str, rates: dict[str, float]) -> None:
        ours, peer = rates["ours"], rates["opencv"]
        print(f"{label:<30}{ours:>12.1f}{peer:>14.1f}{ours / peer:>7.2f}x", flush=True)

    default_threads = torch.get_num_threads()
    for label, threads in (("1 thread", 1), (f"default threads ({default_threads})", default_threads)):
        _set_threads(threads)
        report(label, best_rates(images, rows, args.resolution, args.rounds))
    _set_threads(default_threads)
    # libgomp spin-waits at every parallel op; on a shared, oversubscribed machine that costs a scheduler
    # slice per op. The same default threads in a process started with OMP_WAIT_POLICY=PASSIVE:
    settings = [(f"{default_threads} threads, OMP passive", 1, default_threads, "PASSIVE")]
    settings += [(f"{n} worker process(es), 1 thread", n, 1, None) for n in args.workers]
    for label, workers, threads, wait_policy in settings:
        previous = os.environ.get("OMP_WAIT_POLICY")
        if wait_policy:
            os.environ["OMP_WAIT_POLICY"] = wait_policy
        try:
            context = mp.get_context("spawn")
            initargs = (images, rows, args.resolution, threads)
            with context.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
                report(label, best_rates(images, rows, args.resolution, args.rounds, pool, workers))
        finally:
            if wait_policy and previous is None:
                del os.environ["OMP_WAIT_POLICY"]
            elif wait_policy:
                os.environ["OMP_WAIT_POLICY"] = previous
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
