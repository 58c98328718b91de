"""One prepared check of the GPU path on one CUDA GPU, in under 8 minutes (about 3-4 on an A100/H100).

bf16 needs Ampere or later (on a V100 it is emulated: the paper profile there needs ``precision: fp32``).

    .venv/bin/python bench/gpu_check.py [--steps 6] [--images 32] [--out DIR]

1. Training steps of the main arm (adversarial augmentation on every image, mode both; D step with lazy R1)
   at 64 px (width 0.25) and at 512 px (width 1.0), per-GPU batch 4, in bf16 and in fp32, through the
   product's Trainer. The steps between two logs run under ``torch.cuda.set_sync_debug_mode("error")``: any
   host synchronisation in the hot loop raises. The log itself (one read-back) runs outside it. Prints
   images/s, peak GPU memory and the step's FLOP/s as a share of a dense conv peak (bf16 or fp32, the step's
   own precision) measured in the same run.
   At 64 px the run is then resumed: a checkpoint written from the GPU by the product's writer, read back as
   a resumed run reads it, and two more steps under the sync check.
2. Restoration (batched, seeded noise) and evaluation of `--images` test images on the GPU: LPIPS and the FID
   Inception on the GPU, dlib's identity network on the CPU. Uses the pretrained-weights cache when it is
   there (``faceres weights``); without it, untrained VGG16 / no FID and identity (said in the output).
3. The online degradation's JPEG model against libjpeg on the GPU with TF32 switched on around it (the
   degradation must turn it off): PSNR, against the CPU's figure.

Exit status 0 only when every part ran. Nothing is downloaded; data are synthetic faces made on the spot.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from train_step import conv_peer, count_flops  # noqa: E402  (bench/train_step.py: one home for these)

DEVICE = torch.device("cuda")


def sync_check(on: bool) -> contextlib.AbstractContextManager:
    """Any host synchronisation inside raises (CUDA's sync debug mode); a no-op for the CPU dry run."""
    if DEVICE.type != "cuda" or not on:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def mode():
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")

    return mode()


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _vgg():
    from faceres.core.errors import FaceresError

    try:
        from faceres.weights.load import load_vgg16_features

        return load_vgg16_features(), "pretrained"
    except FaceresError:
        import torchvision

        return torchvision.models.vgg16(weights=None).features.eval().requires_grad_(False), "untrained (no cache)"


def train_check(label: str, overrides: dict, data_dir: Path, steps: int, precision: str, peer: dict,
                resume: bool = False) -> dict:
    from faceres.config.arms import find_arm
    from faceres.config.schema import load_config
    from faceres.data.prepare import prepare_dataset
    from faceres.train.data import FaceImages
    from faceres.train.distributed import DistContext
    from faceres.train.logs import LogWindow
    from faceres.train.loop import Trainer
    from faceres.train.precision import resolve_precisions
    from faceres.train.process import configure_process

    config = load_config(REPO / "params.yaml", overrides={
        "profile": "cpu", "profiles.cpu.workers": 0, "profiles.cpu.batch": 4, "profiles.cpu.gpus": 0,
        "profiles.cpu.precision": precision, "profiles.cpu.deterministic": False, "train.augment.prob": 1.0,
        "train.augment.mode": "both", "train.r1_interval": 2, **overrides})
    if not (data_dir / "manifest.csv").is_file():
        prepare_dataset(config, data_dir, progress=False)
    dataset = FaceImages(data_dir)
    device = DEVICE
    config = resolve_precisions(config, device)  # perceptual_precision: auto, as train_arm resolves it
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=device)
    configure_process(config, ctx)
    vgg, vgg_kind = _vgg()
    trainer = Trainer(config, find_arm(config, "main"), dataset, vgg, ctx)
    images = torch.stack([dataset[i % len(dataset)][1] for i in range(4)])
    images = images.pin_memory() if DEVICE.type == "cuda" else images  # as the DataLoader gives them
    trainer.train_step(images)  # warm-up: cuDNN autotuning, allocator
    synchronize()
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    window = LogWindow(device)
    start = time.perf_counter()
    with sync_check(True):
        for step in range(1, steps + 1):
            trainer.step = step
            window.add(trainer.train_step(images), step)
    row, first_bad, _ = window.flush(ctx)  # the read-back, outside the sync check
    synchronize()
    seconds = (time.perf_counter() - start) / steps
    flops = count_flops(trainer, images, 1)
    result = {"label": label, "images_per_s": 4 / seconds, "step_s": seconds,
              "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else 0.0, "flops": flops,
              "peak_share": flops / seconds / peer["flops_per_s"], "finite": first_bad < 0, "vgg": vgg_kind,
              "g_l1": row.get("g_l1")}
    print(f"{label:<34} {result['images_per_s']:8.2f} img/s  step {seconds * 1000:7.1f} ms  peak "
          f"{result['peak_gb']:6.2f} GiB  {flops / 1e9:8.1f} GFLOP = {100 * result['peak_share']:5.1f}% of the "
          f"{precision} conv peak  no host sync in {steps} steps; losses finite: {result['finite']} (VGG {vgg_kind})",
          flush=True)
    if resume:
        resume_check(trainer, config, dataset, vgg, images, data_dir.parent / f"resume-{precision}.pt")
    del trainer
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
    return result


def resume_check(trainer, config, dataset, vgg, images, checkpoint: Path) -> None:
    """A checkpoint written from the device by the product's writer, read back as a resumed run reads it, then
    two steps under the sync check: Adam's step counters must have stayed on the host (on the device each one
    is read back in every optimizer step)."""
    from faceres.config.arms import find_arm
    from faceres.train.checkpoint import CheckpointWriter
    from faceres.train.logs import LogWindow
    from faceres.train.loop import Trainer, resume
    from faceres.train.runcache import run_identity

    arm = find_arm(config, "main")
    run = run_identity(config, arm, dataset.digest(), 1)
    writer = CheckpointWriter()
    writer.save(trainer.state(run), checkpoint)
    writer.wait()
    resumed = Trainer(config, arm, dataset, vgg, trainer.ctx)
    resume(resumed, checkpoint, run)
    same = all(torch.equal(a, b) for a, b in zip(resumed.G.state_dict().values(), trainer.G.state_dict().values()))
    on_host = resumed.step_counters_on_host()
    window = LogWindow(DEVICE)
    with sync_check(True):
        for step in range(resumed.step, resumed.step + 2):
            resumed.step = step
            window.add(resumed.train_step(images), step)
    _, first_bad, _ = window.flush(resumed.ctx)
    synchronize()
    print(f"resume: checkpoint of step {trainer.step} written from {DEVICE} and read back (weights equal: {same}); "
          f"Adam step counters on the host: {on_host}; 2 steps with no host sync; losses finite: {first_bad < 0}",
          flush=True)
    if not (same and on_host and first_bad < 0):
        raise SystemExit("gpu_check: the resumed run differs from the one it resumed")


def restore_and_evaluate(work: Path, images: int) -> None:
    from faceres.config.schema import load_config
    from faceres.data.prepare import prepare_dataset
    from faceres.pipeline.degrade import degrade_dataset
    from faceres.core.errors import FaceresError
    from faceres.metrics.evaluate import EvalOptions, Networks, evaluate_folders
    from faceres.models.build import ModelConfig, generator_from_config
    from faceres.restore.folder import restore_folder

    config = load_config(REPO / "params.yaml", overrides={
        "profile": "cpu", "profiles.cpu.identities": images * 2, "profiles.cpu.images_per_identity": 1,
        "data.test_fraction": 0.5})
    prepare_dataset(config, work / "data", progress=False)
    degrade_dataset(config, "bfr", work / "data", work / "bfr")
    generator = generator_from_config(ModelConfig(resolution=64, skips=4, width=0.25)).to(DEVICE).eval()
    start = time.perf_counter()
    restore_folder(generator, work / "bfr" / "test", work / "restored", noise_seed=0, batch_size=32, progress=False)
    synchronize()
    restore_s = time.perf_counter() - start
    metrics = ["psnr", "ssim", "lpips", "fid", "ipr"]
    networks = Networks.pretrained()
    try:
        networks.fid_inception()
        networks.identity_embedder()
    except FaceresError as exc:
        print(f"(no pretrained weights cache: {exc}; LPIPS with an untrained VGG16, no FID / identity)")
        import torchvision

        metrics = ["psnr", "ssim", "lpips"]
        untrained = torchvision.models.vgg16(weights=None).features.eval()
        networks = Networks(fid_inception=None, lpips_backbone=lambda net: untrained, identity_embedder=None)
    start = time.perf_counter()
    result = evaluate_folders(work / "restored", work / "data" / "images" / "test", metrics=metrics,
                              networks=networks, options=EvalOptions(device=str(DEVICE), batch_size=32, progress=False,
                                                                     n_bootstrap=100))
    evaluate_s = time.perf_counter() - start
    values = {k: (v.get("mean", v.get("value")) if isinstance(v, dict) else v)
              for k, v in result.summary["metrics"].items() if k in ("psnr", "ssim", "lpips", "fid")}
    print(f"restore {result.summary['n_pairs']} images on {DEVICE}: {restore_s:.2f} s (batched, seeded noise); "
          f"evaluate {metrics}: {evaluate_s:.1f} s; " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()),
          flush=True)


def jpeg_check() -> None:
    """diff-JPEG vs libjpeg, on the GPU with TF32 on around the call, and on the CPU."""
    from faceres.degrade.jpeg import jpeg

    generator = torch.Generator().manual_seed(0)
    base = torch.rand(8, 3, 12, 12, generator=generator)
    images = torch.nn.functional.interpolate(base, size=(96, 96), mode="bicubic").clamp(0, 1)
    quality = torch.tensor([60.0, 70, 80, 85, 90, 95, 98, 100])
    real = jpeg(images, quality, "real")

    def psnr(a, b):
        return float(10 * torch.log10(1 / ((a.cpu() - b.cpu()) ** 2).mean()))

    from faceres.core.devices import float32_matmuls

    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
    try:
        with float32_matmuls():
            gpu = jpeg(images.cuda(), quality.cuda(), "diff")
        leaked = jpeg(images.cuda(), quality.cuda(), "diff")  # TF32 left on: what the review's M5 feared
        restored = torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved
    cpu = jpeg(images, quality, "diff")
    print(f"diff-JPEG vs libjpeg: GPU float32 {psnr(gpu, real):.2f} dB, CPU {psnr(cpu, real):.2f} dB, GPU with "
          f"TF32 {psnr(leaked, real):.2f} dB; TF32 setting restored after: {restored}", flush=True)


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per configuration")
    parser.add_argument("--images", type=int, default=32, help="test images restored and evaluated")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run the script's code on the CPU at 64 px only (no sync check): a check of the script")
    args = parser.parse_args()
    if args.cpu_dry_run:
        DEVICE = torch.device("cpu")
    elif not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (torch.cuda.is_available() is False)")
    name = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "CPU dry run"
    print(f"{name} | torch {torch.__version__} | CUDA {torch.version.cuda}", flush=True)
    started = time.perf_counter()
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"
    peers = {"fp32": conv_peer(5, DEVICE, torch.float32)}
    peers["bf16"] = conv_peer(5, DEVICE, torch.bfloat16) if DEVICE.type == "cuda" else peers["fp32"]
    for name, peer in peers.items():
        print(f"conv peer {name}: {peer['flops_per_s'] / 1e12:.1f} TFLOP/s (N=8, 256->256, 3x3, 64x64, fwd+bwd)")
    with tempfile.TemporaryDirectory(prefix="faceres-gpu-check-") as tmp:
        tmp = Path(tmp)
        small = {"profiles.cpu.resolution": 64, "profiles.cpu.width": 0.25, "profiles.cpu.identities": 4,
                 "profiles.cpu.images_per_identity": 2, "data.test_fraction": 0.34}
        large = {"profiles.cpu.resolution": 512, "profiles.cpu.width": 1.0, "profiles.cpu.identities": 4,
                 "profiles.cpu.images_per_identity": 2, "data.test_fraction": 0.34}
        for precision in ("bf16", "fp32") if DEVICE.type == "cuda" else ("fp32",):
            train_check(f"64 px, width 0.25, {precision}", small, tmp / "d64", args.steps, precision, peers[precision],
                        resume=True)
            if DEVICE.type == "cuda":
                train_check(f"512 px, width 1.0, {precision}", large, tmp / "d512", args.steps, precision,
                            peers[precision])
        restore_and_evaluate(tmp / "eval", args.images)
    if DEVICE.type == "cuda":
        jpeg_check()
    print(f"gpu_check: all parts ran in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
