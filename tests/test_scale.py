"""The pieces of the multi-GPU path that run the same on a CPU: the global batch's split, the process count a
launch plans, the logged-values window (one read-back per log), background checkpoints, the shared-cache
check across processes, and restoration batches whose noise is each image's own."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from faceres.core.errors import ConfigError, FaceresError
from faceres.core.files import load_torch as load_checkpoint
from faceres.train.checkpoint import CheckpointWriter
from faceres.train.distributed import DistContext
from faceres.train.launch import planned_processes
from faceres.train.logs import LogWindow
from faceres.train.data import rank_batch
from tests.conftest import REPO, small_config

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_the_global_batch_splits_over_the_processes_or_stops_with_one_line():
    config = small_config(**{"profiles.cpu.batch": 32})
    assert rank_batch(config, 8, 4) == 4 and rank_batch(config, 1, 4) == 32 and rank_batch(config, 0, 4) == 32
    with pytest.raises(ConfigError) as error:
        rank_batch(config, 3, 4)
    assert str(error.value).endswith(
        "profiles.cpu.batch = 32: allowed: a global batch divisible by the 3 training processes (e.g. 12)")
    with pytest.raises(ConfigError, match="8 per process over 4 processes; allowed: a per-process batch that is a "
                                          r"multiple of the minibatch-std group of 16 \(e.g. 64\)"):
        rank_batch(small_config(**{"profiles.cpu.batch": 32}), 4, 16)


def test_a_launch_plans_gpus_times_nodes_processes(monkeypatch):
    config = small_config(**{"profiles.cpu.gpus": 8, "profiles.cpu.batch": 32})
    monkeypatch.delenv("FACERES_TORCHRUN_ARGS", raising=False)
    assert planned_processes(config) == 8
    for args, expected in (("--nnodes 2 --rdzv_backend c10d", 16), ("--nnodes=1:3", 24)):
        monkeypatch.setenv("FACERES_TORCHRUN_ARGS", args)
        assert planned_processes(config) == expected
    monkeypatch.setenv("FACERES_TORCHRUN_ARGS", "--nnodes two")
    with pytest.raises(ConfigError, match="FACERES_TORCHRUN_ARGS: --nnodes 'two': allowed: an integer or MIN:MAX"):
        planned_processes(config)
    # the cpu profile: training in this process, or one gloo process per node when nodes are asked for
    monkeypatch.setenv("FACERES_TORCHRUN_ARGS", "--nnodes 2 --rdzv_backend c10d")
    assert planned_processes(small_config()) == 2
    monkeypatch.delenv("FACERES_TORCHRUN_ARGS")
    assert planned_processes(small_config()) == 1


def test_the_log_window_averages_on_the_device_and_names_the_first_non_finite_step():
    window = LogWindow(CPU.device)
    values = {0: [1.0, 2.0], 1: [3.0, 4.0], 2: [5.0, float("nan")], 3: [7.0, float("inf")]}
    for step, (a, b) in values.items():
        logs = {"a": torch.tensor(a), "b": torch.tensor(b), "host": 0.5}
        if step % 2 == 0:
            logs["every_other"] = torch.tensor(10.0 * step)  # e.g. the R1 penalty on R1 steps only
        window.add(logs, step)
    row, first_bad, wants_checkpoint = window.flush(CPU, want_checkpoint=True)
    assert row["a"] == pytest.approx(4.0) and row["host"] == 0.5 and row["every_other"] == pytest.approx(10.0)
    assert math.isnan(row["b"]) and first_bad == 2 and wants_checkpoint
    window.add({"a": torch.tensor(1.0)}, 4)  # the window starts afresh after a flush
    row, first_bad, wants_checkpoint = window.flush(CPU)
    assert row == {"a": 1.0} and first_bad == -1 and not wants_checkpoint


def test_a_background_checkpoint_holds_the_state_at_save_time_and_a_failed_write_is_raised(tmp_path):
    writer = CheckpointWriter()
    weights = torch.ones(1000)
    writer.save({"step": 3, "w": weights, "nested": [weights[:2]]}, tmp_path / "checkpoint.pt")
    weights.add_(1.0)  # the next training step changes the weights while the file is being written
    writer.wait()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(1000)) and torch.equal(state["nested"][0], torch.ones(2))
    (tmp_path / "file").write_text("")
    writer.save({"w": weights}, tmp_path / "file" / "checkpoint.pt")  # its folder is a file: the write fails
    with pytest.raises(FaceresError, match="checkpoint write failed"):
        writer.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_training_processes_that_do_not_share_the_cache_stop_with_one_line_naming_it(tmp_path):
    # Two gloo processes, each with its own FACERES_CACHE, as two nodes with local home directories would be.
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        os.environ["FACERES_CACHE"] = str(Path({str(tmp_path)!r}) / ("cache" + os.environ["RANK"]))
        sys.path.insert(0, {str(REPO)!r})
        from faceres.core.errors import ConfigError
        from faceres.core.cache import cache_root
        from faceres.train.distributed import barrier, check_shared_directory, init_distributed, shutdown
        ctx = init_distributed(use_cuda=False)
        shared = os.environ.get("SHARED") == "1"
        directory = Path({str(tmp_path)!r}) / "common" if shared else cache_root() / "runs" / "abc"
        report = Path({str(tmp_path)!r}) / ("shared" + os.environ["SHARED"] + "-rank" + os.environ["RANK"] + ".txt")
        try:
            check_shared_directory(directory, ctx, "FACERES_CACHE")
            report.write_text("shared ok")
        except ConfigError as exc:
            report.write_text("error: " + str(exc))
        barrier(ctx)  # both ranks done before the group goes: a peer leaving early aborts gloo's teardown
        shutdown(ctx)
    """))
    outputs = {}
    for shared in ("0", "1"):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
             str(script)], env={**os.environ, "SHARED": shared, "OMP_NUM_THREADS": "1"}, capture_output=True,
            text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-6000:]
        outputs[shared] = [(tmp_path / f"shared{shared}-rank{rank}.txt").read_text() for rank in (0, 1)]
    errors = [line for line in outputs["0"] if line.startswith("error:")]
    assert len(errors) == 2  # every rank stops, not only the one that cannot see the token
    assert errors[0].endswith("1 of 2 training processes cannot see "
                              f"{tmp_path / 'cache0' / 'runs' / 'abc'}; allowed: a directory on storage every node "
                              "shares (set FACERES_CACHE on every node)")
    assert outputs["1"] == ["shared ok", "shared ok"]


def test_seeded_restoration_gives_each_image_its_own_noise_whatever_the_batch(tmp_path):
    from faceres.core.imageio import read_rgb, write_png
    from faceres.models.build import ModelConfig, generator_from_config
    from faceres.restore.folder import restore_folder

    generator = generator_from_config(ModelConfig(resolution=32, skips=1, width=0.125)).eval()
    with torch.no_grad():  # noise strengths start at 0 (StyleGAN2); make the noise matter
        for name, parameter in generator.named_parameters():
            if name.endswith("noise_strength"):
                parameter.fill_(0.5)
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    for i in range(5):
        write_png(inputs / f"face{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))

    def restored(batch_size: int, seed: int) -> list[np.ndarray]:
        out = tmp_path / f"b{batch_size}s{seed}"
        return [read_rgb(p) for p in restore_folder(generator, inputs, out, noise_seed=seed, batch_size=batch_size,
                                                    progress=False)]

    one, four, other_seed = restored(1, 0), restored(4, 0), restored(4, 1)
    for a, b in zip(one, four):  # same noise per image; batched convolutions may round differently
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.mean([np.abs(a.astype(int) - c.astype(int)).mean() for a, c in zip(four, other_seed)]) > 1.0


def test_a_profile_asking_for_more_gpus_than_the_machine_has_stops_before_any_compute():
    from faceres.core.devices import stage_device

    config = small_config()
    assert stage_device(0, config.gpus_setting) == torch.device("cpu")  # gpus: 0 is the CPU, whatever the machine has
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    config = small_config(**{"profiles.cpu.gpus": available + 1, "profiles.cpu.batch": 4 * (available + 1)})
    with pytest.raises(ConfigError) as error:
        stage_device(config.scale.gpus, config.gpus_setting)
    assert str(error.value).endswith(f"profiles.cpu.gpus = {available + 1}: this machine has {available} CUDA "
                                     f"device(s); allowed: at most {available} (0 = CPU)")
