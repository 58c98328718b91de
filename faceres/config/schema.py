"""The configuration schema: `params.yaml` as frozen dataclasses, validated once at the edge.

Every stage and command loads its parameters through :func:`load_config`; an invalid value stops before any
compute with one line naming the key, the value and what is allowed, e.g.::

    params.yaml: skips = 7: allowed: an integer 0..6

The generic loader (faceres/config/loader.py) is driven by the dataclass type hints plus the per-field checks
declared in the field metadata, so adding a parameter is adding one annotated field and the line under it that
says what it means (the attribute docstring: faceres/config/reference.py makes README's parameter reference of them).
Over 400 lines because it is the whole schema: every field with its type, check and meaning.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from faceres.config.loader import TypedLoader, set_dotted
from faceres.core.errors import ConfigError
from faceres.models.architecture import MAX_SKIPS, MBSTD_GROUP, skip_nodes, skips_allowed  # the rule lives with the network

PARAMS_FILE = "params.yaml"
TASKS = ("bfr", "sr8", "sr16")
SPLITS = ("train", "val", "test")
REFERENCE_RESOLUTION = 512  # the resolution at which the paper's degradation ranges are defined
PrecisionMode = Literal["auto", "fp32", "tf32", "bf16"]  # training precision (faceres/train/precision.py)
ARM_NAME = re.compile(r"[a-z0-9_]+")  # arm names become DVC stage keys and param paths: no dots


def check_task(task: str) -> None:
    """The one check of a task name (CLI, stages, degradation): a one-line ConfigError naming the allowed ones."""
    if task not in TASKS:
        raise ConfigError(f"task = {task!r}: allowed: {', '.join(TASKS)}")


def check_ks(ks) -> tuple[int, ...]:
    """The one check of (i)Precision / (i)Recall neighbourhood sizes outside params.yaml (library calls, report
    figures): sorted, without repeats; a one-line ConfigError otherwise."""
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in ks):
        raise ConfigError(f"neighbourhood sizes ks = {list(ks)!r}; allowed: positive integers, e.g. [1, 2, 3, 4]")
    return tuple(sorted({int(k) for k in ks}))


def _check(predicate: Callable[[Any], bool], allowed: str) -> dict:
    """Field metadata: a value check and the human description of what is allowed."""
    return {"check": predicate, "allowed": allowed}


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def skips_fix(skips: int, profile: str, resolution: int) -> str:
    """What makes `skips` possible, for the main model's config error (`dvc exp run -S skips=6` at 64 px)."""
    needed = next((r for r in (2 ** e for e in range(4, 10)) if len(skip_nodes(r)) >= skips), None)
    if needed is None:
        return ""
    # convolution cost grows with the pixel count; every stage reruns, as the profile changes
    return (f"; to run it, also set -S profiles.{profile}.resolution={needed} (about {(needed // resolution) ** 2}x the "
            f"compute of {resolution} px per image, every arm retrained) or -S profile=gpu")


_positive_int = _check(lambda v: v > 0, "an integer > 0")
_non_negative_int = _check(lambda v: v >= 0, "an integer >= 0")
_probability = _check(lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def _range_check(low: float, high: float, kind: str = "numbers") -> dict:
    return _check(
        lambda v: low <= v[0] <= v[1] <= high, f"[low, high] {kind} with {low} <= low <= high <= {high}"
    )


@dataclass(frozen=True)
class ProfileConfig:
    """The scale of a run: `cpu` for a 2-core machine, `paper` for appendix A's 8-GPU setting."""

    resolution: int = field(
        metadata=_check(lambda v: _is_power_of_two(v) and 16 <= v <= 512, "a power of two in 16..512")
    )
    """image size in px; the skip nodes are 8..min(resolution, 256) px (64 px: 4 nodes, 6 skips need >= 256)"""
    width: float = field(metadata=_check(lambda v: 0.0 < v <= 1.0, "a channel multiplier in (0, 1]"))
    """channel multiplier on the paper's network widths"""
    batch: int = field(metadata=_positive_int)
    """the global batch, split evenly over the training processes (gpus, or 1 on the CPU); each share a multiple of the minibatch-std group (4)"""
    epochs: int = field(metadata=_positive_int)
    """passes over the training images per arm"""
    gpus: int = field(metadata=_non_negative_int)
    """0 = train, restore and evaluate on the CPU (even where CUDA exists); N > 0 = N torchrun processes (NCCL), restore/evaluate on the first GPU"""
    workers: int = field(metadata=_non_negative_int)
    """worker processes for data preparation, degradation and loading"""
    precision: PrecisionMode
    """fp32 / tf32 (CUDA matmuls and convolutions in TF32) / bf16 (G and D under bfloat16 autocast + TF32) / auto (bf16 where the training device has native bfloat16: Ampere+ GPUs, CPUs with AVX-512 BF16 or AMX; else fp32)"""
    perceptual_precision: Literal["auto", "fp32", "bf16"]
    """VGG16 of the perceptual loss: bf16 autocast (fast on GPUs and on CPUs with AMX / AVX-512 BF16), fp32, or auto (bf16 where native, as for precision)"""
    channels_last: bool
    """NHWC memory layout for the networks (same arithmetic; time it with bench/train_step.py on your GPU)"""
    identities: int = field(metadata=_check(lambda v: v >= 2, "an integer >= 2"))
    """synthetic source: identities rendered"""
    images_per_identity: int = field(metadata=_positive_int)
    """synthetic source: faces rendered per identity"""
    deterministic: bool = True
    """deterministic kernels (CPU runs resume bit-exactly); false lets cuDNN pick the fastest kernels (cudnn.benchmark)"""
    r1_gamma: float = field(default=10.0, metadata=_check(lambda v: v >= 0, "a number >= 0"))
    """R1 penalty weight on reals; StyleGAN2-ADA's heuristic 0.0002 R^2 / batch (cpu 0.1, gpu 1.0); paper: 10, GFPGAN's value at 512 px"""
    checkpoint_minutes: float | None = field(
        default=None, metadata=_check(lambda v: v is None or v > 0, "null (by steps only) or minutes > 0")
    )
    """checkpoint every this many minutes (null: by steps only); with checkpoint_every, whichever comes first"""
    checkpoint_every: int | None = field(
        default=None, metadata=_check(lambda v: v is None or v > 0, "null (by time only) or an integer > 0")
    )
    """checkpoint every this many steps (null: by time only: a paper-profile checkpoint is 0.8 GB, each a blocking copy to the host); a run's end always writes its result"""

    @property
    def device_type(self) -> str:
        """Where restore, evaluate and training run: 'cuda' when the profile asks for GPUs, else 'cpu'."""
        return "cuda" if self.gpus > 0 else "cpu"


@dataclass(frozen=True)
class FolderConfig:
    """A directory of aligned face photos (FFHQ / CelebA-HQ style)."""

    train_dir: str
    """folder of aligned face photos, e.g. FFHQ images1024x1024"""
    test_dir: str | None = None
    """a separate test folder, e.g. CelebA-HQ; null = split train_dir by identity"""
    identities_csv: str | None = None
    """CSV with file,identity columns; null = one identity per image"""
    limit: int | None = field(default=None, metadata=_check(lambda v: v is None or v > 0, "null or > 0"))
    """use at most this many images (sorted by name); null = all"""
    upscale: bool = False  # allow images smaller than the resolution (upsampled; otherwise a bad image)
    """accept images smaller than the resolution, upsampled (CelebA-10k is 89x109); false = a bad image"""
    test_unseen_after: int | None = field(
        default=None, metadata=_check(lambda v: v is None or v > 0, "null or an integer > 0")
    )
    """the test split takes only identities with no image among the first this many (by name): those an earlier study or calibration scored; null = any identity"""


@dataclass(frozen=True)
class DataConfig:
    source: Literal["synthetic", "folder"]
    """synthetic (embedded renderer, no download) / folder (any directory of aligned face photos)"""
    test_fraction: float = field(metadata=_check(lambda v: 0.0 < v < 1.0, "a number in (0, 1)"))
    """share of identities held out for testing (split by identity, from seed)"""
    val_fraction: float = field(metadata=_check(lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"))
    """share of the other identities held out as a validation split for calibration (0 = none)"""
    on_bad_image: Literal["fail", "skip"]
    """fail / skip (skip records the file and the reason in the manifest)"""
    folder: FolderConfig
    """the folder source"""


@dataclass(frozen=True)
class BFRConfig:
    """Blind face restoration degradation: blur -> downsample -> noise -> JPEG -> resize back.

    Ranges are defined at :data:`REFERENCE_RESOLUTION`; :meth:`at_resolution` scales the blur to another one.
    """

    blur_sigma: tuple[float, float] = field(metadata=_range_check(0.01, 50.0))
    """Gaussian blur sigma range in px at 512 px"""
    kernel_size: int = field(metadata=_check(lambda v: v >= 3 and v % 2 == 1, "an odd integer >= 3"))
    """blur kernel size at 512 px (odd)"""
    anisotropic_prob: float = field(metadata=_probability)
    """share of anisotropic (rotated, two-sigma) kernels"""
    downsample: tuple[float, float] = field(metadata=_range_check(0.5, 32.0))
    """downsampling factor range (input px per low-resolution px)"""
    noise_sigma: tuple[float, float] = field(metadata=_range_check(0.0, 255.0))
    """Gaussian noise sigma range on the 0..255 scale"""
    jpeg_quality: tuple[int, int] = field(metadata=_range_check(1, 100, "integers"))
    """JPEG quality range (integers)"""
    scale_to_resolution: bool = True
    """scale blur sigma and kernel size with resolution / 512"""

    def at_resolution(self, resolution: int) -> "BFRConfig":
        """The same degradation relative to the face at `resolution` px: blur sigma and kernel scale along."""
        if not self.scale_to_resolution or resolution == REFERENCE_RESOLUTION:
            return self
        factor = resolution / REFERENCE_RESOLUTION
        kernel = max(3, int(round(self.kernel_size * factor)) | 1)  # keep it odd
        return dataclasses.replace(
            self,
            blur_sigma=(self.blur_sigma[0] * factor, self.blur_sigma[1] * factor),
            kernel_size=kernel,
        )


@dataclass(frozen=True)
class SRConfig:
    """Super-resolution input: the ground truth downsampled by `factor` (bicubic, antialiased)."""

    factor: int = field(metadata=_check(lambda v: _is_power_of_two(v) and v >= 2, "a power of two >= 2"))
    """downsampling factor of the super-resolution input"""


@dataclass(frozen=True)
class DegradeConfig:
    splits: tuple[Literal["train", "val", "test"], ...] = field(
        metadata=_check(lambda v: len(v) > 0 and len(set(v)) == len(v), "a non-empty list of train/val/test")
    )
    """offline-degraded splits; training degrades online with the same ops"""
    bfr: BFRConfig
    """GFPGAN-style blind degradation: blur, downsample, noise, JPEG, resize back"""
    sr8: SRConfig
    """8x super-resolution input (bicubic)"""
    sr16: SRConfig
    """16x super-resolution input (bicubic)"""

    def task(self, name: str) -> BFRConfig | SRConfig:
        check_task(name)
        return getattr(self, name)


@dataclass(frozen=True)
class AugmentConfig:
    """Adversarial data augmentation (spec section 2's decision): with probability `prob`, replace a
    sample's degradation by a harder one found against the current generator, inside the configured ranges."""

    prob: float = field(metadata=_probability)
    """share of each batch whose degradation is replaced by a harder one; 0.25 by docs/calibration.md (+0.5 dB PSNR over 0.5)"""
    mode: Literal["worst_of_k", "pgd", "both"]
    """worst_of_k / pgd / both (worst of K candidates, then PGD steps from it)"""
    candidates: int = field(metadata=_check(lambda v: v >= 2, "an integer >= 2 (worst of K)"))
    """K: degradations drawn per hardened image, the one with the largest restoration L1 kept"""
    pgd_steps: int = field(metadata=_positive_int)
    """signed-gradient ascent steps on the continuous degradation parameters (2 small ones: a perturbation, not a push to the box corner)"""
    pgd_step: float = field(metadata=_check(lambda v: 0 < v <= 1, "a fraction of each range in (0, 1]"))
    """each PGD step, as a share of each parameter's range (0.05 by docs/calibration.md)"""
    pixel_eps: float = field(metadata=_check(lambda v: 0 <= v <= 255, "an L-inf radius in [0, 255] (0 = off)"))
    """extra L-inf pixel perturbation of the degraded input (0..255 scale); 0 = off"""


@dataclass(frozen=True)
class TrainConfig:
    lr: float = field(metadata=_check(lambda v: 0.0 < v < 1.0, "a learning rate in (0, 1)"))
    """Adam learning rate of G and D (appendix A: 2.5e-3)"""
    betas: tuple[float, float] = field(
        metadata=_check(lambda v: all(0.0 <= b < 1.0 for b in v), "two Adam betas in [0, 1)")
    )
    """Adam betas (appendix A: 0.0, 0.99)"""
    l1_weight: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))
    """weight of the pixel L1 term of L_rec (with Adam only the weights' ratios matter: L1 stays 1)"""
    perceptual_weight: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))
    """VGG16 feature loss weight (Eq. 14; the paper gives none): with style_weight and adversarial_weight, each term's gradient on the output image as large as L1's at alpha = 1 (docs/calibration.md, fifth round)"""
    style_weight: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))
    """Gram style loss weight (Eq. 15): an equal gradient share, as perceptual_weight"""
    adversarial_weight: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))
    """scale of the adversarial term, times alpha (L = ... + alpha * adversarial_weight * L_adv): an equal gradient share at alpha = 1, so alpha keeps the paper's meaning"""
    r1_interval: int = field(metadata=_positive_int)
    """lazy R1: the penalty every this many D steps, scaled by it"""
    ema: bool
    """evaluate the generator's exponential moving average"""
    ema_images: int = field(metadata=_positive_int)
    """EMA half-life in images (StyleGAN2's ema_kimg = 10)"""
    ema_rampup: float = field(metadata=_check(lambda v: 0 <= v <= 1, "a number in [0, 1] (0 = no ramp-up)"))
    """EMA half-life capped at this share of the images seen so far (short runs stay current)"""
    noise_mode: Literal["random", "const", "none"]
    """noise injection while training: random / const / none"""
    skip_mode: Literal["add", "concat"]
    """how a skip merges into the decoder: add / concat (1x1 projection either way)"""
    mapping_lr_multiplier: float = field(metadata=_check(lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"))
    """learning-rate multiplier of the encoder-fed mapping MLP (StyleGAN2's 0.01 leaves it at its initialization)"""
    hflip: float = field(metadata=_probability)
    """probability of mirroring a training image, drawn per (seed, step, image) (replayable)"""
    augment: AugmentConfig
    """adversarial data augmentation (used when aug is true)"""
    log_every: int = field(metadata=_positive_int)
    """steps between logged losses (the one read-back from the device)"""
    sample_every: int = field(metadata=_positive_int)
    """steps between MLflow sample grids (input / output / ground truth)"""
    snapshots: int = field(metadata=_check(lambda v: 1 <= v <= 64, "an integer 1..64"))
    """generator snapshots at every 1/snapshots of training (the last is the result): the points of the validation trajectory"""


@dataclass(frozen=True)
class RestoreConfig:
    noise_seeds: int = field(metadata=_check(lambda v: 1 <= v <= 64, "an integer 1..64"))
    """restorations per input with different noise seeds (PSNR std over seeds)"""


@dataclass(frozen=True)
class ArmConfig:
    """A training configuration: the ablation base, or an arm's overrides of it (null = the base value)."""

    skips: int | None = field(
        default=None, metadata=_check(lambda v: v is None or 0 <= v <= MAX_SKIPS, f"null or an integer 0..{MAX_SKIPS}")
    )
    """the arm's skip connections (null: the base's)"""
    alpha: float | None = field(default=None, metadata=_check(lambda v: v is None or v >= 0, "null or a number >= 0"))
    """the arm's adversarial weight (null: the base's)"""
    aug: bool | None = None
    """the arm's adversarial augmentation (null: the base's)"""


@dataclass(frozen=True)
class AblationConfig:
    """The arms trained beside the main model: each overrides keys of `base` (the paper's defaults)."""

    base: ArmConfig
    """the paper's defaults, which every arm overrides one key of"""
    arms: dict[str, ArmConfig]
    """arms trained beside the main model (Table 6: skips*, C.4: alpha*, Table 7: noaug)"""
    seeds: ReplicateSeeds
    """more training seeds (replicates): the main model's and every arm's"""


def _seed_list(values: tuple[int, ...]) -> bool:
    return len(set(values)) == len(values) and all(0 <= v < 2**63 for v in values)


def replicate_name(arm: str, seed: int) -> str:
    """The method name of `arm` trained with another training seed: main_s1, skips0_s1."""
    return f"{arm}_s{seed}"


@dataclass(frozen=True)
class ReplicateSeeds:
    """Training seeds beyond the global `seed`: each trains the model again as method `<arm>_s<seed>`
    (the same data split, degradations of the test split and settings; another initialisation, batch order,
    noise and augmentation). The tables show mean +- std over an arm's seeds."""

    main: tuple[int, ...] = field(metadata=_check(_seed_list, "a list of distinct integers in [0, 2**63)"))
    """the main model's extra training seeds (make study: [1, 2])"""
    arms: tuple[int, ...] = field(metadata=_check(_seed_list, "a list of distinct integers in [0, 2**63)"))
    """every ablation arm's extra training seeds (make study: [1])"""


@dataclass(frozen=True)
class EvaluateConfig:
    metrics: tuple[Literal["psnr", "ssim", "lpips", "fid", "ipr", "ipr_inception"], ...] = field(
        metadata=_check(lambda v: len(v) > 0, "a non-empty list of psnr, ssim, lpips, fid, ipr, ipr_inception")
    )
    """metrics computed: psnr, ssim, lpips, fid, ipr (identity features), ipr_inception"""
    lpips_net: Literal["vgg", "alex"]
    """LPIPS backbone: vgg as in face-restoration papers, or alex"""
    ks: tuple[int, ...] = field(metadata=_check(lambda v: len(v) > 0 and all(1 <= k <= 16 for k in v), "integers 1..16"))
    """neighbourhood sizes of (i)Precision / (i)Recall (Figure 8)"""
    bootstrap: int = field(metadata=_check(lambda v: v >= 0, "an integer >= 0 (0 = no confidence interval)"))
    """resamples for the 95% confidence intervals (0 = none)"""
    batch: int = field(metadata=_positive_int)
    """images per batch through LPIPS and Inception"""


@dataclass(frozen=True)
class ReportConfig:
    psnr_spread: Literal["seed_std", "ci95"]
    """PSNR +-: std over restoration noise seeds (seed_std) or bootstrap 95% half-width (ci95)"""
    ipr_k: int = field(metadata=_check(lambda v: 1 <= v <= 16, "an integer 1..16"))
    """iPrecision in Tables 6 and 8: identity features at this k"""
    qualitative_images: int = field(metadata=_check(lambda v: 1 <= v <= 32, "an integer 1..32"))
    """test images in the qualitative figures"""
    votes: tuple[str, ...] = ()
    """human-study votes CSVs; empty = no votes"""
    votes_key: str | None = None
    """the questionnaire's key CSV"""


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str | None = field(default=None, metadata=_check(lambda v: v is None or v.strip() != "",
                                                                  "a non-empty name, or null"))
    """MLflow experiment name; null = faceres-<profile>-<data> (data: synthetic or the training folder's name)"""
    uri: str | None = None
    """MLflow tracking URI; null = $MLFLOW_TRACKING_URI, else the local store mlflow.db (plain `mlflow ui` there)"""


@dataclass(frozen=True)
class Config:
    """All parameters of one pipeline run. `scale` is the active profile."""

    skips: int = field(metadata=_check(lambda v: 0 <= v <= MAX_SKIPS, f"an integer 0..{MAX_SKIPS}"))
    """main model: encoder->decoder skip connections from 8 px up, 0..6 (paper default 4)"""
    alpha: float = field(metadata=_check(lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0"))
    """main model: adversarial weight, L = L_rec + alpha L_adv (paper default 1.0)"""
    aug: bool
    """main model: adversarial data augmentation while training (Table 7's Y)"""
    profile: str
    """which block of profiles sets the scale: cpu / study / gpu / paper"""
    seed: int = field(metadata=_check(lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)"))
    """global seed: rendering, splits, degradations, training"""
    profiles: dict[str, ProfileConfig]
    """the scales of a run: cpu (2 cores, a smoke run), study (2 cores, ~4 h on real faces with training seeds: make study), gpu (one GPU, overnight), paper (appendix A: 8 GPUs)"""
    data: DataConfig
    """where the faces come from"""
    degrade: DegradeConfig
    """the degradation of each task"""
    train: TrainConfig
    """training of every arm"""
    restore: RestoreConfig
    """restoration of the test inputs"""
    ablations: AblationConfig
    """the ablation arms"""
    evaluate: EvaluateConfig
    """metrics"""
    external: dict[str, str | None]
    """other methods' restorations of data/degraded/bfr/test (same file names); null = not provided"""
    report: ReportConfig
    """tables and figures"""
    tracking: TrackingConfig
    """MLflow"""
    source_file: str = PARAMS_FILE  # where the values came from, for messages

    @property
    def scale(self) -> ProfileConfig:
        return self.profiles[self.profile]

    @property
    def resolution(self) -> int:
        return self.scale.resolution

    @property
    def gpus_setting(self) -> str:
        """Where the profile's GPU count is set, as an error message names it."""
        return f"{self.source_file}: profiles.{self.profile}.gpus"


# --------------------------------------------------------------------------------------------------------
# Loading


def _cross_checks(config: Config, loader: TypedLoader) -> None:
    """Constraints that involve several keys."""
    if config.profile not in config.profiles:
        loader.fail("profile", config.profile, "one of " + ", ".join(config.profiles))
    resolution = config.resolution
    if config.skips > len(skip_nodes(resolution)):
        loader.fail("skips", config.skips, skips_allowed(resolution) + skips_fix(config.skips, config.profile, resolution))
    for task in ("sr8", "sr16"):
        factor = config.degrade.task(task).factor
        if resolution // factor < 4:
            loader.fail(
                f"degrade.{task}.factor", factor, f"a factor leaving >= 4 px at resolution {resolution}"
            )
    for name, profile in config.profiles.items():
        processes = max(profile.gpus, 1)
        if profile.batch % processes or (profile.batch // processes) % MBSTD_GROUP:
            loader.fail(
                f"profiles.{name}.batch", profile.batch,
                f"a global batch that splits over gpus = {profile.gpus} into per-GPU batches that are multiples of "
                f"the discriminator's minibatch-std group of {MBSTD_GROUP} (e.g. {processes * MBSTD_GROUP})",
            )
    base = config.ablations.base
    for key in ("skips", "alpha", "aug"):
        if getattr(base, key) is None:
            loader.fail(f"ablations.base.{key}", None, "a value (the base holds every key)")
    for name in config.external:
        if not ARM_NAME.fullmatch(name) or name in ("main", "deg") or name in config.ablations.arms:
            loader.fail(f"external.{name}", name, "a method name of lowercase letters, digits and _, not an arm's")
    if config.report.ipr_k not in config.evaluate.ks:
        loader.fail("report.ipr_k", config.report.ipr_k, f"one of evaluate.ks {list(config.evaluate.ks)}")
    for name in config.ablations.arms:
        if not ARM_NAME.fullmatch(name) or name == "main":
            loader.fail(f"ablations.arms.{name}", name, "a name of lowercase letters, digits and _ other than 'main'")
    for group, arms in (("main", ["main"]), ("arms", list(config.ablations.arms))):
        seeds = getattr(config.ablations.seeds, group)
        if config.seed in seeds:
            loader.fail(f"ablations.seeds.{group}", list(seeds),
                        f"seeds other than seed = {config.seed} (that run is the method itself)")
        for arm in arms:
            for seed in seeds:
                name = replicate_name(arm, seed)
                if name in config.ablations.arms or name in config.external:
                    loader.fail(f"ablations.seeds.{group}", list(seeds),
                                f"seeds whose replicate names do not collide: {arm} with seed {seed} is {name}, "
                                f"a method of its own")
    if config.data.source == "folder" and not config.data.folder.train_dir:
        loader.fail("data.folder.train_dir", config.data.folder.train_dir, "a directory of face images")


def config_from_dict(params: dict, source: str = PARAMS_FILE, overrides: dict | None = None) -> Config:
    """Build and validate a :class:`Config` from a params mapping (plus dotted-key overrides)."""
    params = dict(params)
    for dotted, value in (overrides or {}).items():
        set_dotted(params, dotted, value, source)
    loader = TypedLoader(source)
    config = loader.build(Config, params)
    config = dataclasses.replace(config, source_file=source)
    _cross_checks(config, loader)
    return config


def load_config(path: str | Path = PARAMS_FILE, overrides: dict | None = None) -> Config:
    """Read and validate params.yaml (one-line ConfigError on any problem)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the parameters file ({exc.strerror})") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    config = config_from_dict(params or {}, source=str(path), overrides=overrides)
    return _resolve_paths(config, path.resolve().parent)


def _resolve_paths(config: Config, base: Path) -> Config:
    """Relative data paths are relative to the params file's folder (the repo root), not the working dir."""

    def resolve(value: str | None) -> str | None:
        if value is None or Path(value).is_absolute():
            return value
        return str(base / value)

    folder = config.data.folder
    folder = dataclasses.replace(
        folder,
        train_dir=resolve(folder.train_dir),
        test_dir=resolve(folder.test_dir),
        identities_csv=resolve(folder.identities_csv),
    )
    external = {name: resolve(value) for name, value in config.external.items()}
    return dataclasses.replace(config, data=dataclasses.replace(config.data, folder=folder), external=external)
