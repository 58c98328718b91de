"""Device discipline of the GPU path, checked on a CPU: nothing of a training step or of restoration lives on
the wrong device, and nothing reads device memory back to the host.

Two stand-ins for an accelerator, neither of which needs one:

- the ``meta`` device: real tensors without storage. Mixing them with CPU tensors raises (as CUDA does), and
  every host synchronisation - ``.item()``, ``float()``, ``bool()``, ``.tolist()``, ``nonzero``, boolean
  masks, ``torch.equal``, ``.cpu()`` - raises because there is no data to read. A full training step runs on
  it, backward passes and Adam included.
- ``FakeTensorMode`` tensors on a fake ``cuda`` device, with CUDA's device rules; the autograd engine needs a
  real CUDA context for backward, so this one covers the forward passes (degradation, G, D).

At commit 7200751 the full step fails on the meta device at the blur's centro-symmetry check (`torch.equal`,
a host sync) and, past it, at the augmentation's CPU parameters and `better.any()` / `nonzero()` (review C1).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from faceres.core import streams
from faceres.config.arms import find_arm
from faceres.data.prepare import prepare_dataset
from faceres.degrade.ops import clear_device_caches
from faceres.degrade.chain import apply_bfr_tensor
from faceres.degrade.sampling import sample_online
from faceres.train.data import FaceImages, step_degradations
from faceres.train.distributed import DistContext
from faceres.train.logs import LogWindow
from faceres.core.files import save_torch
from faceres.train.loop import Trainer, resume
from faceres.train.runcache import run_identity
from tests.conftest import small_config

META = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("meta"))
# Every part of the step on: adversarial augmentation in mode both (worst of K + PGD + pixel step) on every
# image, the D step with R1 at this step, random noise inputs, the perceptual loss.
FULL_STEP = {
    "profiles.cpu.batch": 8, "train.augment.prob": 1.0, "train.augment.mode": "both", "train.augment.pixel_eps": 1.0,
    "train.r1_interval": 1, "train.noise_mode": "random",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("device") / "data"
    prepare_dataset(small_config(**FULL_STEP), root, progress=False)
    return root


def _vgg_features() -> nn.Sequential:
    """VGG16's feature stack, untrained: the layers the perceptual loss taps, without the weights cache."""
    import torchvision

    return torchvision.models.vgg16(weights=None).features.eval().requires_grad_(False)


def _everything_on(device: torch.device, trainer: Trainer) -> list[str]:
    misplaced = []
    for name, network in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema), ("loss", trainer.loss)):
        for key, tensor in [*network.named_parameters(), *network.named_buffers()]:
            if tensor.device != device or (tensor.grad is not None and tensor.grad.device != device):
                misplaced.append(f"{name}.{key}")
    for optimizer in (trainer.opt_g, trainer.opt_d):
        for state in optimizer.state.values():
            misplaced += [f"adam.{k}" for k, v in state.items() if v.dim() > 0 and v.device != device]
    return misplaced


def test_a_full_training_step_stays_on_its_device_and_never_reads_it_back(data):
    config = small_config(**FULL_STEP)
    dataset = FaceImages(data)
    trainer = Trainer(config, find_arm(config, "main"), dataset, _vgg_features(), META)
    images = torch.stack([dataset[i][1] for i in range(config.scale.batch)])  # what the DataLoader yields
    assert trainer.r1.applies_at(0) and trainer.arm.aug and trainer.arm.alpha > 0

    logs = trainer.train_step(images)  # raises on any device mix or host read

    assert {"aug_l1_gain", "g_l1", "g_feature", "g_style", "g_adversarial", "d_loss", "d_r1"} <= set(logs)
    assert logs["aug_selected"] == 1.0  # known on the host: which images are hardened is a host-side draw
    assert all(v.device == META.device for v in logs.values() if isinstance(v, torch.Tensor))
    assert _everything_on(META.device, trainer) == []
    window = LogWindow(META.device)
    window.add(logs, trainer.step)  # accumulating and the non-finite flag: device ops only
    with pytest.raises((RuntimeError, NotImplementedError)):
        window.flush(META)  # the one read-back per log_every steps: here it must fail, there is no data


def test_the_degradation_and_the_networks_run_on_fake_cuda_tensors(data):
    from torch._subclasses.fake_tensor import FakeTensorMode

    config = small_config(**FULL_STEP)
    bfr = config.degrade.bfr.at_resolution(config.resolution)
    dataset = FaceImages(data)
    cpu = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    config = small_config(**FULL_STEP, **{"train.perceptual_weight": 0, "train.style_weight": 0})
    trainer = Trainer(config, find_arm(config, "main"), dataset, None, cpu)
    mode = FakeTensorMode()
    cuda = torch.device("cuda", 0)
    clear_device_caches()  # CPU constants cached by earlier tests are real tensors, which fake mode refuses

    def to_fake_cuda(tensor: torch.Tensor) -> torch.Tensor:
        fake = mode.fake_tensor_converter.from_real_tensor(mode, tensor.detach().clone())
        with mode:
            return fake.to(cuda)

    for network in (trainer.G, trainer.D):  # `module.to("cuda")` would need CUDA: convert tensor by tensor
        for module in network.modules():
            for key, value in module._parameters.items():
                module._parameters[key] = nn.Parameter(to_fake_cuda(value), requires_grad=value.requires_grad)
            for key, value in module._buffers.items():
                module._buffers[key] = to_fake_cuda(value)
    try:
        with mode:
            gt = torch.empty(8, 3, 64, 64, device=cuda).uniform_()
            positions = torch.arange(8, device=cuda)
            params = step_degradations(bfr, config.seed, 3, positions, (64, 64))
            degraded = apply_bfr_tensor(gt, params)
            keys = streams.keys_for(5, positions)
            restored = trainer.G(degraded * 2 - 1, noise_mode="random", noise_keys=keys)
            logits = trainer.D(restored)
            assert {t.device for t in (degraded, restored, logits, params.noise, params.scale)} == {cuda}
            # sample_online's draws never leave the keys' device
            assert sample_online(bfr, keys, (64, 64)).sigma_x.device == cuda
            # the trap this test is here for: a CPU tensor among CUDA ones is refused, as on a GPU
            with pytest.raises(RuntimeError, match="device"):
                apply_bfr_tensor(gt, params.to("cpu"))
    finally:
        clear_device_caches()  # per-device constants made of fake tensors must not outlive the mode


def test_a_resumed_run_keeps_adams_step_counters_on_the_host_and_steps_without_a_host_read(data, tmp_path):
    # Review 2, finding 4: at 67a98fd the checkpoint was read with map_location=<training device>, which put
    # Adam's `step` counters on the device; non-capturable Adam then reads each one back (`.item()`) in every
    # optimizer step: two host syncs per parameter tensor. Here the resumed step runs on the meta device, where
    # any such read raises.
    config = small_config(**FULL_STEP)
    dataset = FaceImages(data)
    arm = find_arm(config, "main")
    cpu = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    images = torch.stack([dataset[i][1] for i in range(config.scale.batch)])
    trainer = Trainer(config, arm, dataset, _vgg_features(), cpu)
    trainer.train_step(images)
    trainer.step = 1
    run = run_identity(config, arm, "0" * 64, 1)
    save_torch(trainer.state(run), tmp_path / "checkpoint.pt")

    resumed = Trainer(config, arm, dataset, _vgg_features(), META)
    with warnings.catch_warnings():  # loading real tensors into meta parameters is a no-op, and says so
        warnings.simplefilter("ignore", UserWarning)
        resume(resumed, tmp_path / "checkpoint.pt", run)
    assert resumed.step == 1
    counters = [state["step"] for opt in (resumed.opt_g, resumed.opt_d) for state in opt.state.values()]
    assert len(counters) == len(list(resumed.G.parameters())) + len(list(resumed.D.parameters()))
    assert {c.device.type for c in counters} == {"cpu"} and resumed.step_counters_on_host()
    assert _everything_on(META.device, resumed) == []  # the moments went to the device with their parameters
    resumed.train_step(images)  # raises on any host read
