"""Throughput of one full training step (Trainer.train_step) against this machine's dense conv throughput.

One step = the per-image degradation draws, the adversarial augmentation search (worst of K + PGD against the
current generator), the online degradation, a generator step (L1 + VGG16 feature/style + alpha * adversarial),
a discriminator step (lazy R1) and the EMA update, as `faceres train` runs it: params.yaml's main arm, the
process settings of train_arm (configure_process). Figures, per configuration:

1. images/s at the cpu profile (64 px, its width and batch) and at 512 px, width 1.0, batch 4, on the CPU;
2. the step's FLOPs (torch.utils.flop_counter.FlopCounterMode around one step: convolutions and matmuls,
   forward and backward; elementwise ops and FFTs are not counted) and the achieved FLOP/s;
3. the peer, measured in the same process: a dense float32 conv2d forward + backward (N=8, 256->256, 3x3,
   64x64), FLOP/s;
4. achieved / peer (target at the cpu profile: >= 40%), per wall second and per CPU second;
5. with a CUDA GPU: images/s at 512 px, width 1.0, batch 32 on one GPU, at the paper profile's precision
   (`precision: bf16`: the networks under bf16 autocast, TF32 matmuls; faceres/train/precision.py) with and
   without channels_last, and in plain fp32, against a bf16 conv peer; the card's name is printed.

The step is timed at one fixed step index (same images, degradations and augmentation choices; augmenting the
configured share of the batch), best of `--repeats`; the lazy R1 pass (every r1_interval steps) is timed on
an R1 step and amortized into images/s. Wall time counts what the machine gives us; process CPU time (all
threads) moves less when other processes share the cores. `--breakdown` splits one step into phases
(augmentation search, degradation, G/VGG/D forward and backward, R1, Adam, EMA).

Each OpenMP wait policy runs in a fresh process (libgomp reads OMP_WAIT_POLICY once, at start-up): unset,
libgomp's threads spin between parallel regions, which on a shared, oversubscribed machine costs a scheduler
slice at every op; PASSIVE puts them to sleep. The machine is shared, so numbers move between runs: compare
the figures of one run.

    .venv/bin/python bench/train_step.py [--threads N] [--repeats 3] [--skip-512] [--skip-gpu]
                                         [--wait-policy both|unset|passive] [--breakdown] [--profile-ops]
                                         [--baseline REV [--rounds 2]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "RESULT "


# --------------------------------------------------------------------------------------------------------
# Set-up (child process)


def _import_torch(threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch


def build_trainer(overrides: dict, data_dir: Path, device):
    """A single-process Trainer of the main arm as `faceres train` builds it (VGG16 from the weights cache),
    and one batch of its images."""
    import torch

    from faceres.config.arms import find_arm
    from faceres.config.schema import load_config
    from faceres.data.prepare import prepare_dataset
    from faceres.train.data import FaceImages
    from faceres.train.distributed import DistContext
    from faceres.train.loop import Trainer
    from faceres.train.process import configure_process
    from faceres.weights.load import load_vgg16_features

    config = load_config(REPO / "params.yaml", overrides={"profile": "cpu", "profiles.cpu.workers": 0, **overrides})
    config = _resolved(config, device)
    if not (data_dir / "manifest.csv").is_file():
        prepare_dataset(config, data_dir, progress=False)
    dataset = FaceImages(data_dir)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=device)
    configure_process(config, ctx)  # as train_arm does: deterministic kernels, allocator
    trainer = Trainer(config, find_arm(config, "main"), dataset, load_vgg16_features(), ctx)
    count = config.scale.batch
    images = torch.stack([dataset[i % len(dataset)][1] for i in range(count)])
    return trainer, images


def _resolved(config, device):
    """The config with `auto` precisions resolved, as train_arm does (a no-op at commits without them)."""
    try:
        from faceres.train.precision import resolve_precisions
    except ImportError:
        return config
    return resolve_precisions(config, device)


def representative_step(trainer) -> int:
    """The first step > 0 without R1 whose augmentation selects the configured share of the batch."""
    from faceres.train.augment import selected_images

    config, positions = trainer.config, trainer.positions
    want = round(config.train.augment.prob * len(positions)) if trainer.arm.aug else 0
    for step in range(1, 200):
        if trainer.r1.applies_at(step):
            continue
        if not trainer.arm.aug or len(selected_images(config.train.augment, config.seed, step, positions)) == want:
            return step
    return 1


def r1_step(trainer, after: int) -> int | None:
    if trainer.arm.alpha <= 0 or trainer.r1.gamma <= 0:
        return None
    return (after // trainer.r1.interval + 1) * trainer.r1.interval


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(trainer, images, step: int, repeats: int) -> dict:
    """Best-of-`repeats` wall and process-CPU seconds of train_step at a fixed step index (after a warm-up).

    CPU seconds (all threads) move less than wall time when other processes share the cores.
    """
    device = trainer.ctx.device
    wall, cpu, logs = float("inf"), float("inf"), {}
    for i in range(repeats + 1):
        trainer.step = step
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        logs = trainer.train_step(images)
        sync(device)
        if i > 0:
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
    return {"seconds": wall, "cpu_seconds": cpu, "logs": logs}


def count_flops(trainer, images, step: int) -> int:
    """FLOPs of one train_step, by torch.utils.flop_counter's per-op formulas (convolutions, matmuls, forward and
    backward). A plain dispatch mode: FlopCounterMode's module hooks refuse the augmentation's autograd.grad."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    trainer.step = step
    with Counter() as counter:
        trainer.train_step(images)
    return counter.total


def conv_peer(repeats: int, device, dtype=None) -> dict:
    """FLOP/s (per wall and per process-CPU second) of a dense conv2d forward + backward (float32, or
    `dtype`)."""
    import torch
    import torch.nn.functional as F

    n, c, size = 8, 256, 64
    generator = torch.Generator().manual_seed(0)
    dtype = dtype or torch.float32
    x = torch.randn(n, c, size, size, generator=generator).to(device, dtype).requires_grad_(True)
    w = (torch.randn(c, c, 3, 3, generator=generator) * 0.02).to(device, dtype).requires_grad_(True)
    grad = torch.randn(n, c, size, size, generator=generator).to(device, dtype)
    flops = 3 * 2 * n * c * c * 9 * size * size  # forward, grad input, grad weight
    wall, cpu = float("inf"), float("inf")
    for i in range(repeats + 1):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        F.conv2d(x, w, padding=1).backward(grad)
        x.grad = w.grad = None
        sync(device)
        if i > 0:
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
    return {"flops_per_s": flops / wall, "flops_per_cpu_s": flops / cpu}


# --------------------------------------------------------------------------------------------------------
# Time breakdown: wall time per phase of one step (exclusive of nested phases)


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class _Phases:
    """Wall and process-CPU seconds per named phase, exclusive of the phases nested in it; phases nested in a
    GROUPS phase are reported under it ("augmentation search/G forward")."""

    GROUPS = ("augmentation search", "R1 penalty")

    def __init__(self, device):
        self.device, self.totals, self.stack = device, {}, []

    @contextmanager
    def phase(self, name: str):
        sync(self.device)
        group = next((entry[0] for entry in self.stack if entry[0] in self.GROUPS), None)
        label = name if group is None or name == group else f"{group}/{name}"
        self.stack.append([label, _clocks(), (0.0, 0.0)])
        try:
            yield
        finally:
            sync(self.device)
            label, start, nested = self.stack.pop()
            elapsed = tuple(now - then for now, then in zip(_clocks(), start))
            self.add(label, tuple(e - n for e, n in zip(elapsed, nested)))
            if self.stack:
                self.stack[-1][2] = tuple(n + e for n, e in zip(self.stack[-1][2], elapsed))

    def add(self, label: str, seconds: tuple[float, float]) -> None:
        wall, cpu = self.totals.get(label, (0.0, 0.0))
        self.totals[label] = (wall + seconds[0], cpu + seconds[1])

    def wrap(self, obj, attr: str, name: str):
        """Time every call of obj.attr as `name`; returns the undo."""
        had_own = attr in vars(obj)
        original = getattr(obj, attr)

        def wrapped(*args, **kwargs):
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(obj, attr, wrapped)
        return lambda: setattr(obj, attr, original) if had_own else delattr(obj, attr)


def breakdown(trainer, images, step: int, repeats: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per phase of one step (the repeat with the least CPU time), by patching its parts
    in place (the patches are removed afterwards).

    The G step's backward is split at the boundaries of D and VGG by identity autograd functions that note
    when their gradient arrives (grad at a module's outputs: its backward starts; at its input: it ends).
    """
    import torch

    import faceres.train.loop as loop
    import faceres.train.augment as augment

    device = trainer.ctx.device
    phases = _Phases(device)
    marks: list[tuple[str, tuple[float, float]]] = []
    state = {"g_step": False, "backwards": 0}

    class Mark(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, label):
            ctx.label = label
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            sync(device)
            marks.append((ctx.label, _clocks()))
            return grad, None

    perceptual = trainer.loss.perceptual
    vgg_features, d_forward, g_forward = perceptual.features, trainer.D.forward, trainer.G.forward

    def marked_vgg(image):
        if not (state["g_step"] and image.requires_grad):
            return vgg_features(image)
        return [Mark.apply(o, "vgg_out") for o in vgg_features(Mark.apply(image, "vgg_in"))]

    def marked_d(image):
        if not (state["g_step"] and image.requires_grad):
            return d_forward(image)
        return Mark.apply(d_forward(Mark.apply(image, "d_in")), "d_out")

    def g_forward_flagged(*args, **kwargs):
        if kwargs.get("noise_mode") != "const":  # the G step (the augmentation search runs const noise)
            state["g_step"] = True
        return g_forward(*args, **kwargs)

    def split_marks(name: str) -> None:
        """Move the D and VGG16 backward time (between their first and last mark) out of phase `name`."""
        for module in ("D", "VGG"):
            times = [t for label, t in marks if label.startswith(module.lower())]
            if times:  # first mark: the module's backward starts; last: it ends
                seconds = tuple(max(clock) - min(clock) for clock in zip(*times))
                phases.add(name, tuple(-x for x in seconds))
                phases.add(f"{module} backward (G step)", seconds)

    autograd_grad = torch.autograd.grad

    def timed_grad(*args, **kwargs):
        if not state["g_step"]:  # the augmentation search's PGD gradients
            with phases.phase("autograd.grad"):
                return autograd_grad(*args, **kwargs)
        marks.clear()  # the G step: the losses' gradients on the output image, through VGG16 and D
        name = "G step: loss gradients on the image"
        with phases.phase(name):
            result = autograd_grad(*args, **kwargs)
        split_marks(name)
        return result

    tensor_backward = torch.Tensor.backward

    def timed_backward(tensor, *args, **kwargs):
        state["backwards"] += 1
        g_step = state["backwards"] == 1
        marks.clear()
        name = "G step backward (G)" if g_step else "D step backward"
        with phases.phase(name):
            tensor_backward(tensor, *args, **kwargs)
        state["g_step"] = False
        if g_step:  # a commit whose G step back-propagates the losses and G in one backward
            split_marks(name)

    undo = []
    for obj, attr, value in ((trainer.G, "forward", g_forward_flagged), (trainer.D, "forward", marked_d),
                             (perceptual, "features", marked_vgg)):
        setattr(obj, attr, value)
        undo.append(lambda obj=obj, attr=attr: delattr(obj, attr))
    undo += [
        phases.wrap(loop, "harden", "augmentation search"),
        phases.wrap(augment, "apply_bfr_tensor", "degradation"),
        phases.wrap(loop, "apply_bfr_tensor", "degradation"),
        phases.wrap(trainer.G, "forward", "G forward"),
        phases.wrap(trainer.D, "forward", "D forward"),
        phases.wrap(perceptual, "features", "VGG forward"),
        phases.wrap(trainer.opt_g, "step", "Adam (G)"),
        phases.wrap(trainer.opt_d, "step", "Adam (D)"),
        phases.wrap(trainer, "_update_ema", "EMA"),
        phases.wrap(loop.R1Regularization, "loss", "R1 penalty"),
    ]
    torch.Tensor.backward, torch.autograd.grad = timed_backward, timed_grad
    undo.append(lambda: setattr(torch.Tensor, "backward", tensor_backward))
    undo.append(lambda: setattr(torch.autograd, "grad", autograd_grad))
    results: list[dict[str, tuple[float, float]]] = []
    try:
        for i in range(repeats + 1):
            phases.totals.clear()
            state.update(g_step=False, backwards=0)
            trainer.step = step
            with phases.phase("other (loss terms, sampling, glue)"):
                trainer.train_step(images)
            if i > 0:
                results.append(dict(phases.totals))
    finally:
        for action in reversed(undo):
            action()
    return min(results, key=lambda r: sum(cpu for _, cpu in r.values()))


def print_breakdown(title: str, parts: dict[str, tuple[float, float]]) -> None:
    wall, cpu = (sum(clock) for clock in zip(*parts.values()))
    print(f"  time per phase, {title}: step {wall:.2f} s wall, {cpu:.2f} CPU-s")
    for name, (w, c) in sorted(parts.items(), key=lambda kv: -kv[1][1]):
        print(f"    {name:<38}{w * 1e3:>8.0f} ms{c * 1e3:>8.0f} CPU-ms{100 * c / cpu:>6.1f}%")


def profile_ops(trainer, images, step: int, rows: int = 25) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    trainer.step = step
    trainer.train_step(images)
    trainer.step = step
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.train_step(images)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


# --------------------------------------------------------------------------------------------------------
# One configuration (child process)


def measure(label: str, overrides: dict, data_dir: Path, args, repeats: int, peer: dict | None,
            device) -> dict:
    """Time one configuration's step (and optionally break it down), print one line, return the figures."""
    trainer, images = build_trainer(overrides, data_dir, device)
    batch = images.shape[0]
    step = representative_step(trainer)
    timed = time_step(trainer, images, step, repeats)
    result = {"label": label, "batch": batch, "step": step, "seconds": timed["seconds"],
              "cpu_seconds": timed["cpu_seconds"], "aug_selected": timed["logs"].get("aug_selected", 0.0)}
    r1 = r1_step(trainer, step)
    result["amortized_seconds"] = result["seconds"]
    if r1 is not None:  # lazy R1: one step in `interval` also runs the penalty
        result["r1_seconds"] = time_step(trainer, images, r1, max(1, repeats // 2))["seconds"]
        interval = trainer.r1.interval
        result["amortized_seconds"] = ((interval - 1) * result["seconds"] + result["r1_seconds"]) / interval
    result["images_per_s"] = batch / result["amortized_seconds"]
    result["flops"] = count_flops(trainer, images, step)
    parts = breakdown(trainer, images, step, max(2, repeats // 2)) if args.breakdown else None
    if args.profile_ops:
        profile_ops(trainer, images, step)
    result["flops_per_s"] = result["flops"] / result["seconds"]
    result["flops_per_cpu_s"] = result["flops"] / result["cpu_seconds"]
    line = (f"{label:<30}{result['images_per_s']:>8.2f} img/s  step {result['seconds']:>6.2f} s "
            f"({result['cpu_seconds']:.2f} CPU-s)")
    if "r1_seconds" in result:
        line += f", R1 step {result['r1_seconds']:.2f} s"
    line += f"  {result['flops'] / 1e9:.1f} GFLOP, {result['flops_per_s'] / 1e9:.1f} GFLOP/s"
    if peer:
        result["ratio"] = result["flops_per_s"] / peer["flops_per_s"]
        result["cpu_ratio"] = result["flops_per_cpu_s"] / peer["flops_per_cpu_s"]
        line += f" = {100 * result['ratio']:.0f}% of peer"
        if trainer.ctx.device.type == "cpu":
            line += f" ({100 * result['cpu_ratio']:.0f}% per CPU-s)"
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(line + f"  [step {step}, augmented {result['aug_selected']:.0%}, process peak RSS "
          f"{result['max_rss_mb']:.0f} MB]", flush=True)
    if parts:
        print_breakdown(label, parts)
    return result


def child(args) -> None:
    torch = _import_torch(args.threads)
    policy = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp: active spinning)")
    print(f"-- OMP_WAIT_POLICY {policy}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {"policy": policy, "threads": torch.get_num_threads()}
    results["peer"] = peer = conv_peer(max(2, args.repeats // 2), torch.device("cpu"))
    print(f"{'peer: dense conv2d fwd+bwd':<30}{peer['flops_per_s'] / 1e9:>8.1f} GFLOP/s "
          f"({peer['flops_per_cpu_s'] / 1e9:.1f} per CPU-s; N=8, 256->256, 3x3, 64x64, float32)", flush=True)
    with tempfile.TemporaryDirectory(prefix="faceres-bench-") as tmp:
        tmp = Path(tmp)
        # enough synthetic images for one batch of each configuration
        cpu_profile = {"profiles.cpu.identities": 12, "profiles.cpu.images_per_identity": 2}
        results["cpu"] = measure("cpu profile (64 px)", cpu_profile, tmp / "cpu", args, args.repeats, peer,
                                 torch.device("cpu"))
        if not args.skip_512:
            large = {"profiles.cpu.resolution": 512, "profiles.cpu.width": 1.0, "profiles.cpu.batch": 4,
                     "profiles.cpu.identities": 3, "profiles.cpu.images_per_identity": 2,
                     "data.test_fraction": 0.34}
            results["512"] = measure("512 px, width 1.0, batch 4", large, tmp / "512", args,
                                     max(1, args.repeats // 3), peer, torch.device("cpu"))
        if torch.cuda.is_available() and not args.skip_gpu:
            cuda = torch.device("cuda")
            results["gpu_peer"] = gpu_peer = conv_peer(5, cuda, torch.bfloat16)
            print(f"{'GPU peer: conv2d bf16':<30}{gpu_peer['flops_per_s'] / 1e9:>8.1f} GFLOP/s "
                  f"({torch.cuda.get_device_name(cuda)})", flush=True)
            paper = {"profiles.cpu.resolution": 512, "profiles.cpu.width": 1.0, "profiles.cpu.batch": 32,
                     "profiles.cpu.identities": 12, "profiles.cpu.images_per_identity": 3}
            variants = {
                "gpu": ("bf16", False),
                "gpu_channels_last": ("bf16", True),
                "gpu_fp32": ("fp32", False),
            }
            for key, (precision, channels_last) in variants.items():
                label = f"GPU: 512 px, batch 32, {precision}" + (", channels_last" if channels_last else "")
                overrides = {**paper, "profiles.cpu.precision": precision,
                             "profiles.cpu.channels_last": channels_last}
                results[key] = measure(label, overrides, tmp / "gpu", args, args.repeats, gpu_peer, cuda)
                torch.cuda.empty_cache()
    print(RESULT_PREFIX + json.dumps(results), flush=True)


# --------------------------------------------------------------------------------------------------------
# Driver: one child process per OpenMP wait policy


def run_child(args, policy: str | None, repo: Path = REPO) -> dict | None:
    """One measuring process of the code in `repo` (this checkout, or a worktree of --baseline)."""
    env = dict(os.environ)
    if policy is None:
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = os.pathsep.join([str(repo), *filter(None, [env.get("PYTHONPATH")])])
    argv = ["--child", "--repeats", str(args.repeats)]
    argv += ["--threads", str(args.threads)] if args.threads else []
    for flag in ("skip_512", "skip_gpu", "breakdown", "profile_ops"):
        argv += [f"--{flag.replace('_', '-')}"] if getattr(args, flag) else []
    process = subprocess.Popen([sys.executable, str(repo / "bench" / "train_step.py"), *argv], env=env,
                               stdout=subprocess.PIPE, text=True, cwd=repo)
    result = None
    for line in process.stdout:
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
        else:
            print(line, end="", flush=True)
    if process.wait() != 0:
        print(f"(the run with OMP_WAIT_POLICY {policy or 'unset'} failed: exit {process.returncode})")
    return result


def compare_with_baseline(args) -> None:
    """This checkout against commit `args.baseline`, alternated in fresh processes (PASSIVE wait policy)."""
    import statistics

    worktree = Path(tempfile.mkdtemp(prefix="faceres-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=REPO, check=True,
                   capture_output=True)
    try:
        ratios, rows = [], []
        for round_ in range(args.rounds):
            figures = {}
            for label, repo in (("baseline " + args.baseline, worktree), ("this checkout", REPO)):
                print(f"== round {round_ + 1}: {label}", flush=True)
                result = run_child(args, "PASSIVE", repo)
                figures[label] = result["cpu"] if result else None
            base, new = figures.values()
            if base and new:
                ratios.append(new["images_per_s"] / base["images_per_s"])
                rows.append((base["images_per_s"], new["images_per_s"], new.get("ratio")))
        for base, new, peer in rows:
            print(f"cpu profile: {args.baseline} {base:.2f} img/s, this checkout {new:.2f} img/s = "
                  f"{new / base:.2f}x" + (f" ({100 * peer:.0f}% of the conv peer)" if peer else ""))
        if ratios:
            print(f"cpu profile images/s, this checkout / {args.baseline}: median {statistics.median(ratios):.2f}x "
                  f"over {len(ratios)} alternations")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per figure (512 px: a third)")
    parser.add_argument("--skip-512", action="store_true", help="no 512 px CPU figure")
    parser.add_argument("--skip-gpu", action="store_true", help="no GPU figure even when CUDA is available")
    parser.add_argument("--breakdown", action="store_true", help="time per phase of the step")
    parser.add_argument("--profile-ops", action="store_true", help="torch.profiler table of the top ops")
    parser.add_argument("--wait-policy", choices=("both", "unset", "passive"), default="both",
                        help="OMP_WAIT_POLICY of the measuring process(es)")
    parser.add_argument("--baseline", metavar="REV", default=None,
                        help="also measure commit REV (a temporary git worktree, this venv), alternating with this "
                             "checkout, and print the cpu-profile images/s ratio; e.g. --baseline 7200751")
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline: alternations (median ratio)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.baseline:
        compare_with_baseline(args)
        return
    print(f"faceres training step, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"best of {args.repeats} steps at one fixed step index; peer = dense conv in the same process")
    policies = {"both": [None, "PASSIVE"], "unset": [None], "passive": ["PASSIVE"]}[args.wait_policy]
    results = [r for r in (run_child(args, policy) for policy in policies) if r]
    if len(results) == 2 and all("cpu" in r for r in results):
        active, passive = (r["cpu"]["images_per_s"] for r in results)
        print(f"cpu profile, OMP_WAIT_POLICY=PASSIVE / unset: {passive / active:.2f}x images/s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
