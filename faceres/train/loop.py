"""Training one arm: L = L1 + perceptual (feature + style) + alpha * adversarial, Adam(0, 0.99), lazy R1, EMA.

One step: draw the global batch's images and degradations (pure functions of seed and step), optionally
harden a share of the degradations against the current generator (adversarial augmentation), degrade
online with the differentiable ops, then a generator step, a discriminator step (R1 every `r1_interval`),
and the EMA update. Gradients are averaged over ranks; rank 0 logs, checkpoints and writes the outputs.

Runs are keyed by fingerprint (see checkpoint.py): rerunning an interrupted stage resumes from the last
checkpoint, and an arm identical to one already trained reuses its result.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from faceres.config.arms import Arm
from faceres.config.schema import Config
from faceres.degrade.ops import to_uint8
from faceres.degrade.chain import apply_bfr_tensor
from faceres.core.errors import FaceresError
from faceres.core.files import atomic_directory, load_torch, sha256_file, write_json
from faceres.train.losses import (
    GeneratorLoss,
    LossWeights,
    PerceptualLoss,
    R1Regularization,
    discriminator_adversarial_loss,
)
from faceres.models.build import build_models
from faceres.models.io import save_generator
from faceres.core.cache import CACHE_ENV
from faceres.core.seeds import key_of
from faceres.core.streams import keys_for
from faceres.train.augment import harden
from faceres.train.checkpoint import CHECKPOINT_FORMAT, CheckpointWriter, inputs_difference
from faceres.train.data import FaceImages, StepBatchSampler, StepPlan, mirrored, rank_batch, step_degradations
from faceres.train.distributed import DistContext, average_gradients, barrier, broadcast_object, check_shared_directory
from faceres.train.logs import LogWindow
from faceres.train.outputs import (
    CHECKPOINT_FILE, CURVE_FILE, GENERATOR_FILE, SNAPSHOTS_DIR, SUMMARY_FILE, snapshot_file, snapshot_steps,
)
from faceres.train.precision import Precision, resolve_precisions
from faceres.train.process import configure_process
from faceres.train.runcache import (
    RunIdentity,
    copy_run,
    is_finished,
    model_config,
    read_summary,
    reuse_finished_run,
    run_directory,
    run_identity,
)

log = logging.getLogger(__name__)


class TrainingError(FaceresError):
    """Training cannot go on (non-finite loss, incompatible checkpoint, ...)."""


class Trainer:
    """The state of one arm's training and its step."""

    def __init__(
        self,
        config: Config,
        arm: Arm,
        dataset: FaceImages,
        vgg_features: nn.Sequential | None,
        ctx: DistContext,
    ):
        config = resolve_precisions(config, ctx.device)  # `auto` -> what this device runs natively
        self.config, self.arm, self.dataset, self.ctx = config, arm, dataset, ctx
        train = config.train
        self.bfr = config.degrade.bfr.at_resolution(config.resolution)
        self.model_config = model_config(config, arm)
        self.precision = Precision(config.scale.precision, ctx.device)
        self.memory_format = torch.channels_last if config.scale.channels_last else torch.contiguous_format
        self.G, self.D = build_models(self.model_config, seed=config.seed)
        self.G.to(ctx.device, memory_format=self.memory_format)
        self.D.to(ctx.device, memory_format=self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        weights = LossWeights(
            l1=train.l1_weight, feature=train.perceptual_weight, style=train.style_weight,
            adversarial=arm.alpha * train.adversarial_weight,
        )
        perceptual = (
            PerceptualLoss(vgg_features, bf16=config.scale.perceptual_precision == "bf16").to(
                ctx.device, memory_format=self.memory_format)
            if weights.needs_perceptual
            else None
        )
        self.loss = GeneratorLoss(weights, perceptual)
        self.r1 = R1Regularization(gamma=config.scale.r1_gamma, interval=train.r1_interval)
        self.g_params, self.d_params = list(self.G.parameters()), list(self.D.parameters())
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train.lr, betas=train.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train.lr, betas=train.betas)  # R1 rides in D's step
        self.global_batch = config.scale.batch
        self.rank_batch = rank_batch(config, ctx.world_size, self.model_config.mbstd_group_size)
        self.plan = StepPlan(len(dataset), self.global_batch, config.seed)
        self.total_steps = config.scale.epochs * self.plan.steps_per_epoch
        self.positions = self.plan.rank_positions(ctx.rank, ctx.world_size)
        # the same positions on the device: per-image streams are keyed by them, with no transfer per step
        self.position_tensor = torch.arange(ctx.rank, self.global_batch, max(ctx.world_size, 1), device=ctx.device)
        assert len(self.positions) == self.rank_batch == self.position_tensor.shape[0]
        self.step = 0
        self.curve: list[dict[str, float]] = []
        self.seconds = 0.0

    # ---------------------------------------------------------------------------------------------------
    def state(self, run: RunIdentity) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": run.key,
            "inputs": run.inputs,
            "step": self.step,
            "seconds": self.seconds,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "curve": self.curve,
            "model_config": self.model_config.to_dict(),
        }

    def load_state(self, state: dict) -> None:
        """Load a checkpoint read to the host: each network and optimizer copies its tensors to its device,
        while Adam's `step` counters stay on the host, as a fresh Adam keeps them (on CUDA, a device counter
        costs two host syncs per parameter tensor in every optimizer step)."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        assert self.step_counters_on_host(), "load the checkpoint with map_location='cpu'"
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self.curve = list(state["curve"])

    def measures_gradient_shares(self, step: int) -> bool:
        """Whether step `step` measures each loss term's gradient on the output image: the last step of every
        log window (and the run's last step), so each logged row carries one measurement per window."""
        return (step + 1) % self.config.train.log_every == 0 or step + 1 == self.total_steps

    def _gradient_shares(self, terms: dict[str, torch.Tensor], image: torch.Tensor, logs: dict) -> torch.Tensor:
        """The gradient of the weighted loss on the output image, term by term (one backward through VGG16 or
        D per term, none through G); logs each term's gradient norm (`grad_TERM`) and its share of their sum
        (`share_TERM`). Returns the terms' summed gradient, which G's backward then takes: no extra G pass."""
        grads = {name: torch.autograd.grad(term, image, retain_graph=True)[0] for name, term in terms.items()}
        norms = {name: grad.norm() for name, grad in grads.items()}
        norm_sum = sum(norms.values())
        for name, norm in norms.items():
            logs[f"grad_{name}"] = norm.detach()
            logs[f"share_{name}"] = (norm / norm_sum.clamp_min(1e-30)).detach()
        return sum(grads.values())

    def step_counters_on_host(self) -> bool:
        """Whether every Adam `step` counter is a host tensor (the sync-free optimizer step needs them there)."""
        return all(s["step"].device.type == "cpu" for opt in (self.opt_g, self.opt_d) for s in opt.state.values())

    # ---------------------------------------------------------------------------------------------------
    def train_step(self, images_uint8: torch.Tensor) -> dict[str, torch.Tensor | float]:
        """One G step, one D step and the EMA update on this rank's share of the global batch.

        Returns the step's logged values as 0-dim device tensors (host floats where the value is known on the
        host): nothing in the step reads the device back, so a GPU runs ahead of the Python loop.
        """
        config, train, device = self.config, self.config.train, self.ctx.device
        gt = images_uint8.to(device=device, non_blocking=True).to(torch.float32).div_(255.0)
        gt = mirrored(gt, train.hflip, config.seed, self.step, self.position_tensor)
        gt = gt.contiguous(memory_format=self.memory_format)
        size = tuple(gt.shape[-2:])
        params = step_degradations(self.bfr, config.seed, self.step, self.position_tensor, size)
        logs: dict[str, torch.Tensor | float] = {}
        pixel_delta, hardened = None, None
        if self.arm.aug:
            with self.precision.autocast():  # the generator's passes only: the degradation opts out
                hardened = harden(
                    self.G, gt, params, self.bfr, train.augment, config.seed, self.step, self.positions,
                    self.position_tensor,
                )
            params, pixel_delta = hardened.params, hardened.pixel_delta
            logs.update(hardened.stats)
        with torch.no_grad():
            degraded = apply_bfr_tensor(gt, params)
            if pixel_delta is not None:
                degraded = (degraded + pixel_delta).clamp(0, 1)
        inputs, target = degraded * 2 - 1, gt * 2 - 1

        # Generator step. Its noise inputs are keyed by global position, like everything else of an image.
        # G's output is detached into `image`, where the losses' gradients land (the gradient shares are
        # measured there, and D's forward on it also serves the D step: D's weights do not change in between).
        noise_keys = keys_for(key_of("noise", config.seed, self.step), self.position_tensor)
        with self.precision.autocast():  # forward passes only; outputs back to float32 before the losses
            restored = self.G(inputs, noise_mode=train.noise_mode, noise_keys=noise_keys).float()
            image = restored.detach().requires_grad_(True)
            fake_logits = self.D(image).float() if self.loss.weights.adversarial > 0 else None
            terms = self.loss.weighted_terms(image, target, fake_logits)
        total = self.loss.total(terms, image)
        if self.measures_gradient_shares(self.step):
            image_grad = self._gradient_shares(terms, image, logs)
        else:
            (image_grad,) = torch.autograd.grad(total, image, retain_graph=fake_logits is not None)
        self.opt_g.zero_grad(set_to_none=True)
        restored.backward(image_grad)
        average_gradients(self.g_params, self.ctx)
        self.opt_g.step()
        logs["g_total"] = total.detach()
        logs.update({f"g_{name}": value for name, value in self.loss.unweighted(terms).items()})
        if hardened is not None:
            logs["aug_l1_gain"] = hardened.l1_gain(restored, target)

        # Discriminator step (only when the adversarial term is used), on the G step's D(fake).
        if fake_logits is not None:
            r1_step = self.r1.applies_at(self.step)
            real = target.detach().requires_grad_(r1_step)
            with self.precision.autocast():
                real_logits = self.D(real).float()
            d_loss = discriminator_adversarial_loss(real_logits, fake_logits)
            total_d = d_loss
            if r1_step:
                r1 = self.r1.loss(real_logits, real)
                total_d = total_d + r1
                logs["d_r1"] = r1.detach()
            self.opt_d.zero_grad(set_to_none=True)
            total_d.backward(inputs=self.d_params)  # not into `image` or `real`: D's weights only
            average_gradients(self.d_params, self.ctx)
            self.opt_d.step()
            logs["d_loss"] = d_loss.detach()
            logs["d_real"] = real_logits.detach().mean()
        self._update_ema()
        return logs

    @torch.no_grad()
    def _update_ema(self) -> None:
        if not self.config.train.ema:
            self.G_ema.load_state_dict(self.G.state_dict())
            return
        train = self.config.train
        images_seen = (self.step + 1) * self.global_batch
        half_life = train.ema_images
        if train.ema_rampup > 0:
            half_life = min(half_life, images_seen * train.ema_rampup)
        beta = 0.5 ** (self.global_batch / max(half_life, 1e-8))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in self.G.parameters()], 1.0 - beta)
        torch._foreach_copy_(list(self.G_ema.buffers()), list(self.G.buffers()))

    # ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, count: int = 8) -> np.ndarray:
        """Rows of input | output (EMA, constant noise) | ground truth for fixed training images."""
        count = min(count, len(self.dataset))
        gt = torch.stack([self.dataset[i][1] for i in range(count)]).float().div(255).to(self.ctx.device)
        positions = torch.arange(count, device=self.ctx.device)
        params = step_degradations(self.bfr, self.config.seed, -1, positions, tuple(gt.shape[-2:]))
        degraded = apply_bfr_tensor(gt, params)
        restored = (self.G_ema(degraded * 2 - 1, noise_mode="const") + 1) / 2
        rows = torch.cat([degraded, restored.clamp(0, 1), gt], dim=3)  # side by side
        grid = to_uint8(torch.cat(list(rows), dim=1))  # stacked vertically
        return grid.permute(1, 2, 0).cpu().numpy()


def _save_result_generator(trainer: Trainer, path: Path, fingerprint_: str) -> None:
    """The generator a run hands on (G_ema, or G without EMA) as it is now: the result, or a snapshot."""
    save_generator(
        path, trainer.G_ema if trainer.config.train.ema else trainer.G, trainer.model_config,
        ema=trainer.config.train.ema, arm=dataclasses.asdict(trainer.arm), fingerprint=fingerprint_,
        step=trainer.step,
    )


def _write_outputs(trainer: Trainer, out_dir: Path, fingerprint_: str, summary_extra: dict) -> dict:
    _save_result_generator(trainer, out_dir / GENERATOR_FILE, fingerprint_)
    curve = pd.DataFrame(trainer.curve)
    curve.to_csv(out_dir / CURVE_FILE, index=False)
    last = trainer.curve[-1] if trainer.curve else {}
    summary = {
        "arm": dataclasses.asdict(trainer.arm),
        "fingerprint": fingerprint_,
        "steps": trainer.step,
        "images": trainer.step * trainer.global_batch,
        "global_batch": trainer.global_batch,
        "batch_per_process": trainer.rank_batch,
        "processes": max(trainer.ctx.world_size, 1),
        "seconds": round(trainer.seconds, 2),
        "images_per_s": round(trainer.step * trainer.global_batch / max(trainer.seconds, 1e-9), 3),
        "generator_sha256": sha256_file(out_dir / GENERATOR_FILE),
        "generator": "ema" if trainer.config.train.ema else "raw",
        "final": {k: v for k, v in last.items() if k != "step"},
        **summary_extra,
    }
    write_json(out_dir / SUMMARY_FILE, summary)  # atomic: in final/, its presence says the run is finished
    return summary


def train_arm(
    config: Config,
    arm: Arm,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    vgg_features: nn.Sequential | None,
    ctx: DistContext,
    log: Callable[[dict[str, float], int], None] | None = None,
    log_image: Callable[[np.ndarray, str, int], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    data_digest: str | None = None,
) -> dict:
    """Train `arm` (resuming or reusing a run with the same fingerprint) and write out_dir's outputs.

    `data_digest`: the training images' digest when the caller hashed them already (the launcher hands it on;
    only rank 0's is used); None: rank 0 hashes them here while the other ranks wait.
    `stop_after` ends the process's work after that many steps of this call (tests of interruption).
    Returns the summary written to out_dir/train.json (rank 0) or {} on other ranks.
    """
    out_dir = Path(out_dir)
    config = resolve_precisions(config, ctx.device)  # before the fingerprint: the resolved modes are in it
    configure_process(config, ctx)
    dataset = FaceImages(data_dir, "train")
    run = None
    if ctx.is_main:
        run = run_identity(config, arm, data_digest or dataset.digest(), ctx.world_size)
    run = broadcast_object(run, ctx)
    run_dir = run_directory(run.key)
    final_dir = run_dir / "final"
    check_shared_directory(run_dir, ctx, CACHE_ENV)

    if is_finished(run.key):
        return reuse_finished_run(arm, run.key, out_dir) if ctx.local_rank == 0 else {}

    trainer = Trainer(config, arm, dataset, vgg_features, ctx)
    checkpoint = run_dir / CHECKPOINT_FILE
    resume(trainer, checkpoint, run)

    sampler = StepBatchSampler(trainer.plan, trainer.step, trainer.total_steps, ctx.rank, ctx.world_size)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.scale.workers,
        persistent_workers=False,
        pin_memory=ctx.device.type == "cuda",
    )
    bar = None
    if progress and ctx.is_main:
        from tqdm import tqdm

        bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc=f"train {arm.name}", unit="step")
    window = LogWindow(ctx.device)
    window_start = time.perf_counter()
    steps_this_call = 0
    last_good = trainer.step if checkpoint.is_file() else None
    writer = CheckpointWriter()
    checkpoint_steps = config.scale.checkpoint_every  # None: by time only (GPU profiles)
    checkpoint_seconds = (config.scale.checkpoint_minutes or math.inf) * 60.0
    last_checkpoint_time = time.monotonic()
    log_every = config.train.log_every
    # the validation trajectory's points but the last (the result itself); in the run cache, so a resumed run
    # keeps those it wrote (a snapshot past the last checkpoint is written again, identically)
    snapshot_at = set(snapshot_steps(trainer.total_steps, config.train.snapshots)[:-1])

    def save_checkpoint() -> None:
        nonlocal last_good, last_checkpoint_time
        if ctx.is_main:
            writer.save(trainer.state(run), checkpoint)
        last_good, last_checkpoint_time = trainer.step, time.monotonic()

    def stop_if_non_finite(first_bad: float) -> None:
        if first_bad >= 0:
            writer.wait()
            where = f"last good checkpoint: step {last_good} ({checkpoint})" if last_good is not None else "no checkpoint yet"
            raise TrainingError(f"train {arm.name}: non-finite loss at step {int(first_bad)}; stopped; {where}")

    for _, images in loader:
        logs = trainer.train_step(images)
        window.add(logs, trainer.step)
        trainer.step += 1
        steps_this_call += 1
        if bar is not None:
            bar.update(1)
        last_step = trainer.step == trainer.total_steps
        if trainer.step in snapshot_at and ctx.is_main:  # a few per run: one host copy of G each
            (run_dir / SNAPSHOTS_DIR).mkdir(parents=True, exist_ok=True)
            _save_result_generator(trainer, run_dir / SNAPSHOTS_DIR / snapshot_file(trainer.step), run.key)
        step_checkpoint = checkpoint_steps is not None and trainer.step % checkpoint_steps == 0 and not last_step
        if trainer.step % log_every == 0 or last_step or step_checkpoint:
            timed_out = ctx.is_main and time.monotonic() - last_checkpoint_time >= checkpoint_seconds
            steps_in_window = window.steps
            row, first_bad, timed_checkpoint = window.flush(ctx, want_checkpoint=timed_out)
            stop_if_non_finite(first_bad)
            # wall time between two host syncs: the GPU's work of the window, data loading included
            elapsed = time.perf_counter() - window_start
            trainer.seconds += elapsed
            row["images_per_s"] = steps_in_window * trainer.global_batch / max(elapsed, 1e-9)
            row["step"] = trainer.step
            trainer.curve.append(row)
            window_start = time.perf_counter()
            if log is not None:  # the row is the all-reduced mean: the same on every rank
                log({k: v for k, v in row.items() if k != "step"}, trainer.step)
            if bar is not None:
                bar.set_postfix(l1=f"{row.get('g_l1', float('nan')):.4f}")
            if (step_checkpoint or timed_checkpoint) and not last_step:
                save_checkpoint()
        if log_image is not None and trainer.step % config.train.sample_every == 0:
            log_image(trainer.sample_grid(), "samples", trainer.step)
        if stop_after is not None and steps_this_call >= stop_after:
            break
    writer.wait()
    if bar is not None:
        bar.close()
    if trainer.step < trainer.total_steps:
        return {}
    summary = _publish(trainer, run.key, final_dir, out_dir, checkpoint) if ctx.is_main else {}
    if log_image is not None and trainer.step % config.train.sample_every != 0:  # else logged above
        log_image(trainer.sample_grid(), "samples", trainer.step)
    barrier(ctx)
    if ctx.local_rank == 0 and not ctx.is_main:  # another node's first process: rank 0's result, from the cache
        copy_run(final_dir, out_dir)
        summary = read_summary(out_dir)
    return summary


def resume(trainer: Trainer, checkpoint: Path, run: RunIdentity) -> None:
    """Continue from the run's checkpoint when there is one (every rank reads it from the shared cache).

    Read to the host and moved to the device by :meth:`Trainer.load_state`. A checkpoint of another run (other
    settings, images or code: a copied or foreign folder) is refused with what differs, and left as it is.
    """
    if not checkpoint.is_file():
        return
    state = load_torch(checkpoint, map_location="cpu")
    if state.get("format") != CHECKPOINT_FORMAT:
        differs = f"checkpoint format {state.get('format')}, this faceres writes {CHECKPOINT_FORMAT}"
    elif state.get("fingerprint") != run.key:
        differs = inputs_difference(state.get("inputs"), run.inputs)
    else:
        differs = None
    if differs is not None:
        raise TrainingError(
            f"{checkpoint.parent}: holds a checkpoint of another run (differs in: {differs}); not resumed and left "
            f"as it is; to train this run from step 0, delete {checkpoint}"
        )
    trainer.load_state(state)
    if trainer.ctx.is_main:
        log.info(f"train {trainer.arm.name}: resuming from step {trainer.step} of {trainer.total_steps} ({checkpoint})")


def _publish(trainer: Trainer, key: str, final_dir: Path, out_dir: Path, checkpoint: Path) -> dict:
    """Rank 0, at the end: the finished run into the run cache (final/, whole or absent), its copy into out_dir,
    no checkpoint."""
    with atomic_directory(final_dir) as tmp:
        summary = _write_outputs(trainer, tmp, key, {"total_steps": trainer.total_steps})
        snapshots = final_dir.parent / SNAPSHOTS_DIR
        if snapshots.is_dir():
            shutil.copytree(snapshots, tmp / SNAPSHOTS_DIR)
    checkpoint.unlink(missing_ok=True)
    shutil.rmtree(final_dir.parent / SNAPSHOTS_DIR, ignore_errors=True)  # now in final/
    copy_run(final_dir, out_dir)
    return summary

