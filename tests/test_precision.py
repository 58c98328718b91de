"""Training precision (profiles.<name>.precision, faceres/train/precision.py): bf16 runs the networks in bfloat16
and nothing else; a bf16 step agrees with the float32 step to bfloat16 accuracy; fp32 switches off the TF32
convolutions cuDNN allows by default; channels_last changes the memory layout, not the arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faceres.config.arms import find_arm
from faceres.data.prepare import prepare_dataset
from faceres.degrade.chain import apply_bfr_tensor
from faceres.core import streams
from faceres.degrade.sampling import sample_online
from faceres.models.layers import EqualizedConv2d, EqualizedLinear
from faceres.train.data import FaceImages, seeded
from faceres.train.distributed import DistContext
from faceres.train.loop import Trainer
from faceres.train.process import configure_process
from tests.conftest import small_config

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))

# 64 px, batch 4 (the discriminator's minibatch-std group), every step an R1 step and every image
# augmented, so one step exercises every network pass; no VGG (it needs the weights cache and bf16 convolutions
# are emulated, slowly, on CPUs without AVX-512 BF16).
TINY = {
    "profiles.cpu.precision": "fp32",  # the cpu profile's `auto` is bf16 on CPUs with AVX-512 BF16; tests set it
    "profiles.cpu.batch": 4,
    "train.perceptual_weight": 0,
    "train.style_weight": 0,
    "train.r1_interval": 1,
    "train.augment.prob": 1.0,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("precision")
    prepare_dataset(small_config(**TINY), root / "data", progress=False)
    return root / "data"


def _trainer(data: Path, **overrides) -> tuple[Trainer, torch.Tensor]:
    config = small_config(**{**TINY, **overrides})
    dataset = FaceImages(data)
    trainer = Trainer(config, find_arm(config, "main"), dataset, None, CPU)
    images = torch.stack([dataset[i][1] for i in range(config.scale.batch)])
    return trainer, images


def _layer_output_dtypes(trainer: Trainer) -> set[torch.dtype]:
    """Installs hooks recording the output dtype of every dense layer of G and D; returns the (live) set."""
    seen: set[torch.dtype] = set()
    for network in (trainer.G, trainer.D):
        for module in network.modules():
            if isinstance(module, (EqualizedConv2d, EqualizedLinear)):
                module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    return seen


@pytest.mark.parametrize("precision, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_bf16_runs_the_networks_in_bfloat16_and_keeps_weights_and_optimizer_state_in_float32(data, precision, expected):
    trainer, images = _trainer(data, **{"profiles.cpu.precision": precision})
    dtypes = _layer_output_dtypes(trainer)
    logs = trainer.train_step(images)
    assert dtypes == {expected}
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values()), logs
    assert {"g_l1", "g_adversarial", "d_loss", "d_r1", "aug_l1_gain"} <= set(logs)
    for network in (trainer.G, trainer.D, trainer.G_ema):
        assert {p.dtype for p in network.parameters()} == {torch.float32}
    for optimizer in (trainer.opt_g, trainer.opt_d):
        moments = [t for state in optimizer.state.values() for t in state.values() if t.dim() > 0]
        assert moments and {t.dtype for t in moments} == {torch.float32}


def test_a_bf16_steps_gradients_differ_from_float32_far_less_than_two_minibatches_do(data):
    """bf16's rounding is safe when it moves the gradient much less than the minibatch noise SGD already lives
    with: the reference is the float32 gradient of the same step on the other 4 training images."""

    def step(precision: str, images: list[int]) -> tuple[dict, dict[str, torch.Tensor]]:
        # no augmentation: its worst-of-K choice may legitimately flip between precisions
        trainer, _ = _trainer(data, **{"profiles.cpu.precision": precision, "train.augment.prob": 0.0})
        logs = trainer.train_step(torch.stack([trainer.dataset[i][1] for i in images]))
        gradients = {name: torch.cat([p.grad.flatten() for p in network.parameters() if p.grad is not None])
                     for name, network in (("G", trainer.G), ("D", trainer.D))}
        return logs, gradients

    logs32, grads32 = step("fp32", [0, 1, 2, 3])
    logs16, grads16 = step("bf16", [0, 1, 2, 3])
    _, grads_other = step("fp32", [4, 5, 6, 7])
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); a few layers of it stay within ~1%.
    for key in ("g_l1", "g_adversarial", "d_loss", "d_real"):
        assert float(logs16[key]) == pytest.approx(float(logs32[key]), rel=0.02, abs=1e-3), key
    for name in ("G", "D"):
        rounding = 1 - float(torch.nn.functional.cosine_similarity(grads16[name], grads32[name], dim=0))
        minibatch = 1 - float(torch.nn.functional.cosine_similarity(grads_other[name], grads32[name], dim=0))
        norm_ratio = float(grads16[name].norm() / grads32[name].norm())
        other_norm_ratio = float(grads_other[name].norm() / grads32[name].norm())
        print(f"\n{name} gradient: 1 - cosine bf16 vs fp32 {rounding:.4f}, other minibatch {minibatch:.4f}, "
              f"norm ratio {norm_ratio:.4f}, other minibatch {other_norm_ratio:.4f}")
        # measured here: G 0.0018 vs 0.78, D 0.0054 vs 0.61
        assert rounding < 0.05 * minibatch, name
        # The norm likewise: within 10%, and well inside the minibatch's change. (With ToRGB starting near zero,
        # G's gradient norm is 86% its four ToRGB biases', a pixel sum of near-cancelling terms: bf16 moves it
        # by 8%, the rest of G's by 3%; another minibatch by 27%. Measured: G 0.928 vs 0.730, D 0.984 vs 0.831.)
        assert abs(norm_ratio - 1) < 0.1 and abs(norm_ratio - 1) < 0.5 * abs(other_norm_ratio - 1), name


def test_the_degradation_runs_in_float32_inside_a_bf16_autocast_region():
    config = small_config(**TINY)
    bfr = config.degrade.bfr.at_resolution(64)
    images = torch.rand(4, 3, 64, 64, generator=seeded("images", 0))
    params = sample_online(bfr, streams.keys_for(0, torch.arange(4)), (64, 64))
    reference = apply_bfr_tensor(images, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = apply_bfr_tensor(images, params)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, reference)


@pytest.mark.parametrize("precision, expected", [("fp32", "ieee"), ("tf32", "tf32"), ("bf16", "tf32")])
def test_the_precision_sets_the_tf32_switches_and_fp32_turns_off_cudnns_default_tf32(precision, expected):
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # cuDNN's default
        configure_process(small_config(**{"profiles.cpu.precision": precision}), CPU)
        assert torch.backends.cuda.matmul.fp32_precision == expected
        assert torch.backends.cudnn.conv.fp32_precision == expected
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved
        torch.use_deterministic_algorithms(False)


def test_channels_last_changes_the_layout_not_the_step(data):
    results = {}
    for channels_last in (False, True):
        trainer, images = _trainer(data, **{"profiles.cpu.channels_last": channels_last})
        logs = trainer.train_step(images)
        weights = [p for p in trainer.G.parameters() if p.dim() == 4]
        layouts = {p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in weights
                   if p.shape[-1] > 1}
        results[channels_last] = logs, torch.cat([p.detach().flatten() for p in trainer.G.parameters()]), layouts
    (logs_a, weights_a, layout_a), (logs_b, weights_b, layout_b) = results[False], results[True]
    assert layout_a == {False} and layout_b == {True}
    for key in logs_a:
        assert float(logs_b[key]) == pytest.approx(float(logs_a[key]), rel=1e-4, abs=1e-6), key
    # Adam with beta1 = 0 steps by ~lr whatever the gradient's size: a float32 rounding difference in a
    # near-zero gradient can flip a step; all but a tiny share of weights agree.
    assert float(((weights_a - weights_b).abs() > 1e-5).float().mean()) < 0.01


@pytest.mark.parametrize("fused", [False, True])
def test_under_bf16_the_modulated_convolution_stays_in_bfloat16(fused):
    # The demodulation coefficients are computed in float32 but applied in the activations' dtype: a float32
    # factor would promote every decoder activation to float32 (review M11: twice the memory and bandwidth).
    from faceres.models.layers import StyleLayer

    layer = StyleLayer(16, 16, 32, resolution=8)
    x, w = torch.randn(4, 16, 8, 8), torch.randn(4, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, w, noise_mode="const", fused=fused)
    assert out.dtype == torch.bfloat16
    reference = layer(x, w, noise_mode="const", fused=fused)
    assert torch.allclose(out.float(), reference, rtol=0.05, atol=0.05)


def test_under_bf16_the_generators_image_path_accumulates_in_float32():
    # Review 2, finding 10: each ToRGB image and their sum over resolutions stay float32 (stylegan2-ada's img)
    # while the features run in bfloat16; at 67a98fd every block's image and the output were bfloat16.
    from faceres.models.build import ModelConfig, generator_from_config

    generator = generator_from_config(ModelConfig(resolution=64, skips=4, width=0.125))
    blocks = [m for m in generator.modules() if type(m).__name__ == "StyleBlock"]
    seen = []
    for block in blocks:
        block.register_forward_hook(lambda module, args, out: seen.append((out[0].dtype, out[1].dtype)))
    inputs = torch.rand(4, 3, 64, 64, generator=seeded("inputs", 0)) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = generator(inputs, noise_mode="const")
    assert output.dtype == torch.float32
    assert seen == [(torch.bfloat16, torch.float32)] * len(blocks)
    # float32 accumulation: the output is not on bfloat16's grid (8 mantissa bits), as a bf16 sum would be
    assert not torch.equal(output, output.bfloat16().float())
    reference = generator(inputs, noise_mode="const")
    assert torch.allclose(output, reference, atol=0.05)


def test_the_online_degradation_switches_tf32_off_inside_and_restores_it_after():
    # Review M5: the TF32 switch is process-wide; the degradation's matmuls (DCT, colour, blur spectrum) must run
    # in IEEE float32 inside a tf32/bf16 process, and the caller's setting must come back, also after an error.
    from faceres.core.devices import float32_matmuls

    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    try:
        matmul.fp32_precision = conv.fp32_precision = "tf32"
        with float32_matmuls():
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        with pytest.raises(RuntimeError), float32_matmuls():
            raise RuntimeError("a failing degradation")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def test_perceptual_loss_precision_switch_is_its_own():
    """VGG16 in bf16 only when asked (even inside an outer bf16 autocast it stays float32 otherwise); its
    gradient then matches float32's closely, and the loss reductions stay float32."""
    import torchvision

    from faceres.train.losses import PerceptualLoss

    torch.manual_seed(0)
    vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    seen = []
    for module in vgg:
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, inputs, output: seen.append(output.dtype))
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    grads = {}
    for bf16, outer in ((False, False), (True, False), (False, True)):
        loss = PerceptualLoss(vgg, bf16=bf16)
        seen.clear()
        restored = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=outer):
            feature, style = loss(restored, y)
        assert feature.dtype == style.dtype == torch.float32
        assert set(seen) == {torch.bfloat16 if bf16 else torch.float32}, (bf16, outer, set(seen))
        (feature + style).backward()
        grads[bf16, outer] = restored.grad.flatten()
    cosine = torch.nn.functional.cosine_similarity(grads[False, False], grads[True, False], dim=0)
    assert 1 - cosine < 0.01, float(1 - cosine)
    assert torch.equal(grads[False, False], grads[False, True])  # the outer autocast changes nothing


def test_after_a_bf16_configure_knn_metrics_run_in_process_and_restore_and_evaluate_turn_tf32_off(tmp_path):
    # Review 2, findings 11-12. At 67a98fd precision_recall read the legacy torch.get_float32_matmul_precision(),
    # which raises once the per-backend switches are set: an evaluation after GPU training in the same process
    # crashed. And cuDNN's convolutions (TF32 by default on CUDA) were left as the process had them.
    import numpy as np

    from faceres.core.imageio import write_png
    from faceres.metrics.evaluate import EvalOptions, Networks, evaluate_folders
    from faceres.metrics.manifold import precision_recall
    from faceres.models.build import ModelConfig, generator_from_config
    from faceres.restore.folder import restore_folder
    from faceres.train.precision import Precision
    from tests.test_metrics import brute_force_pr

    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    seen: dict[str, tuple[str, str]] = {}

    def record(name):
        def hook(module, args) -> None:
            seen.setdefault(name, (matmul.fp32_precision, conv.fp32_precision))
        return hook

    try:
        Precision("bf16", torch.device("cpu")).configure()
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        rng = np.random.default_rng(0)
        real, fake = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
        result = precision_recall(real, fake, ks=(1, 2))
        expected = brute_force_pr(real, fake, (1, 2), True)
        assert (result.precision, result.iprecision) == (expected["precision"], expected["iprecision"])

        generator = generator_from_config(ModelConfig(resolution=64, skips=2, width=0.125)).eval()
        generator.register_forward_pre_hook(record("restore"))
        inputs = tmp_path / "degraded"
        for i in range(3):
            write_png(inputs / f"{i}.png", rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
        restore_folder(generator, inputs, tmp_path / "restored", progress=False)
        import torchvision

        vgg = torchvision.models.vgg16(weights=None).features.eval()
        networks = Networks(fid_inception=None, lpips_backbone=lambda net: vgg, identity_embedder=None)
        # LPIPS copies the backbone's weights into its own network: watch every module's forward pass
        handle = torch.nn.modules.module.register_module_forward_pre_hook(record("evaluate"))
        try:
            evaluate_folders(tmp_path / "restored", inputs, ["lpips"], networks=networks,
                             options=EvalOptions(ci_level=None, progress=False))
        finally:
            handle.remove()
        assert seen == {"restore": ("ieee", "ieee"), "evaluate": ("ieee", "ieee")}
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")  # the caller's, restored
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved
