"""Training: a kill -9'd run resumes to the same weights; 2 CPU processes (gloo) sharing a global batch = 1 process;
a three-minute blind-restoration run on real faces restores held-out faces better than their degraded input
(LPIPS, by more than the spread between runs)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch

from faceres.data.prepare import prepare_dataset
from faceres.core.cache import CACHE_ENV
from faceres.train.outputs import CHECKPOINT_FILE
from tests.conftest import REPO, small_config

# A tiny run: 64 px, width 0.125, 8 training images (one global batch of 8 per step), 4 steps, no VGG
# (the perceptual terms need the weights cache; they are exercised by the real-data test below), in float32:
# the process-count comparisons below bound float32's summation-order differences; bf16 (the cpu profile's
# `auto` on a CPU with AVX-512 BF16) rounds each rank's half-batch convolutions differently as well (9e-3 after
# two steps, measured), which is the arithmetic's, not the distributed code's.
TINY = [
    "profiles.cpu.precision=fp32",
    "profiles.cpu.width=0.125", "profiles.cpu.batch=8", "profiles.cpu.epochs=4", "profiles.cpu.workers=0",
    "train.perceptual_weight=0", "train.style_weight=0", "profiles.cpu.checkpoint_every=1", "train.log_every=1",
    "train.r1_interval=2", "train.noise_mode=none", "train.augment.prob=0.5",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    prepare_dataset(small_config(), root / "data", progress=False)  # 12 images, 8 in train
    return root / "data"


def _train_cmd(data: Path, out: Path, overrides: list[str], launcher: list[str] | None = None) -> list[str]:
    args = ["train", "main", "--params", str(REPO / "params.yaml"), "--data", str(data), "--out", str(out),
            "--no-track"]
    args += [f"-S{o}" for o in overrides]
    if launcher is None:
        return [sys.executable, "-m", "faceres.cli", *args]
    return [*launcher, "-m", "faceres.cli", *args]


def _env(cache: Path) -> dict:
    return {**os.environ, "FACERES_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _small(overrides: list[str]) -> list[str]:
    return ["skips=2", "profiles.cpu.resolution=64", "profiles.cpu.identities=6",
            "profiles.cpu.images_per_identity=2", "data.test_fraction=0.34", *overrides]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _generator_state(out: Path) -> dict:
    return torch.load(out / "generator.pt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_kill_minus_nine_then_rerun_gives_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path):
    overrides = _small(TINY)
    reference = tmp_path / "reference"
    subprocess.run(_train_cmd(tiny_data, reference, overrides), env=_env(tmp_path / "cache_a"), check=True,
                   capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    env = _env(tmp_path / "cache_b")
    process = subprocess.Popen(_train_cmd(tiny_data, interrupted, overrides), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = tmp_path / "cache_b" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill as soon as a mid-run checkpoint exists
        checkpoints = list(runs.glob(f"*/{CHECKPOINT_FILE}")) if runs.exists() else []
        if checkpoints and torch.load(checkpoints[0], weights_only=True)["step"] >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "generator.pt").exists(), "the run finished before it could be killed"

    result = subprocess.run(_train_cmd(tiny_data, interrupted, overrides), env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from step" in result.stdout
    expected, resumed = _generator_state(reference), _generator_state(interrupted)
    assert expected.keys() == resumed.keys()
    for name in expected:  # deterministic CPU mode: bit-identical, not merely close
        assert torch.equal(expected[name], resumed[name]), name


TWO_STEPS = [*TINY, "profiles.cpu.epochs=2"]  # every part on: augmentation, D step, R1 at step 0, EMA


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), *args]


@pytest.fixture(scope="module")
def one_node_two_processes(tiny_data, tmp_path_factory) -> dict:
    """The generator of a two-step run by two gloo processes on one node (torchrun, global batch 8 = 4 + 4)."""
    out = tmp_path_factory.mktemp("ddp")
    launcher = _torchrun(2, "--master_port", str(_free_port()))
    result = subprocess.run(_train_cmd(tiny_data, out / "model", _small(TWO_STEPS), launcher),
                            env=_env(out / "cache"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return _generator_state(out / "model")


@pytest.mark.slow
def test_two_gloo_processes_sharing_the_global_batch_match_one_process(tiny_data, tmp_path, one_node_two_processes):
    single = tmp_path / "single"
    subprocess.run(_train_cmd(tiny_data, single, _small(TWO_STEPS)), env=_env(tmp_path / "c1"), check=True,
                   capture_output=True, timeout=600)
    one, two = _generator_state(single), one_node_two_processes
    diff = torch.cat([(one[k].float() - two[k].float()).abs().flatten() for k in one])
    print(f"\nDDP vs single: max abs diff {float(diff.max()):.3g}, share > 1e-5: {float((diff > 1e-5).float().mean()):.2e}")
    # Same images, degradations and augmentation draws per global position; only the order of float32 sums
    # differs (two all-reduced halves vs one batch). Adam with beta1 = 0 steps by about +-lr for a gradient
    # near 0, whose sign that rounding can flip, and PGD's signed steps likewise: so a few elements may differ
    # by up to ~lr; all but a small share agree to 1e-5. (Measured here: 3.6e-4 max, 0.2% above 1e-5. The same
    # rounding makes two single-process runs with 1 vs 2 threads differ by 5.6e-3 after 4 GAN steps.)
    lr = 2.5e-3
    assert float(diff.max()) <= lr
    assert float((diff > 1e-5).float().mean()) < 0.01
    assert float(diff.mean()) < 1e-6


def _node_workspace(root: Path, data: Path) -> Path:
    """A checkout as each node has one: params.yaml (with the tiny run's values) and data/prepared."""
    from faceres.pipeline.dvc import set_params

    root.mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    set_params(root / "params.yaml", _small(TWO_STEPS))
    (root / "data").mkdir()
    (root / "data" / "prepared").symlink_to(data)
    return root


def _start_node(workspace: Path, command: list[str], cache: Path, rendezvous: str, address: str) -> subprocess.Popen:
    # c10d ranks the nodes by address: --local_addr decides which node gets rank 0 (on real nodes, the host name)
    env = {**_env(cache), "FACERES_TORCHRUN_ARGS": f"--nnodes 2 --rdzv_backend c10d --rdzv_endpoint {rendezvous} "
                                                    f"--rdzv_id faceres-test --local_addr {address}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _two_nodes(tmp: Path, data: Path, caches: tuple[Path, Path]) -> tuple[tuple[int, str], tuple[int, str], Path, Path]:
    """docs/gpu-and-cluster.md's recipe on one machine: node 0 runs the train-main stage's command (what `dvc repro train-main`
    runs), node 1 `faceres train main --no-track`; node 1 is started first and gets rank 0."""
    node0, node1 = _node_workspace(tmp / "node0", data), _node_workspace(tmp / "node1", data)
    rendezvous = f"127.0.0.1:{_free_port()}"
    other = _start_node(node1, [sys.executable, "-m", "faceres.cli", "train", "main", "--no-track"], caches[1],
                        rendezvous, "127.0.0.1")
    stage = _start_node(node0, [sys.executable, str(REPO / "stages" / "train.py"), "main"], caches[0], rendezvous,
                        "127.0.0.2")
    results = []
    for process in (stage, other):
        output, _ = process.communicate(timeout=600)
        results.append((process.returncode, output))
    return results[0], results[1], node0, node1


@pytest.mark.slow
def test_the_several_nodes_recipe_gives_the_weights_of_one_node_with_two_processes(tiny_data, tmp_path,
                                                                                   one_node_two_processes):
    # docs/gpu-and-cluster.md "Several nodes", run: two torchrun agents (one gloo process each) meet at a c10d rendezvous on
    # 127.0.0.1. At 67a98fd the recipe trained only where the profile had GPUs, and the DVC node wrote no
    # outputs whenever c10d gave rank 0 to the other node (it ranks nodes by host name, not --node_rank).
    shared = tmp_path / "shared-cache"
    (code0, out0), (code1, out1), node0, node1 = _two_nodes(tmp_path / "shared", tiny_data, (shared, shared))
    assert code0 == 0, out0[-3000:]
    assert code1 == 0, out1[-3000:]
    assert "train main: 2 steps" in out1 and "train main: 2 steps" not in out0  # rank 0 was on node 1
    reference = one_node_two_processes
    for node in (node0, node1):  # every node ends with the result, bit for bit the one-node run's
        weights = _generator_state(node / "models" / "main")
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[k], reference[k]) for k in reference), node
    # the DVC node's MLflow run has the training curves, though rank 0 ran elsewhere
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{node0 / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
            if r.data.tags.get("arm") == "main" and r.info.run_name == "train-main"]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "g_l1")] == [1, 2]

    # a node started without the shared cache: every process stops with the one-line error naming FACERES_CACHE
    (code0, out0), (code1, out1), _, _ = _two_nodes(tmp_path / "unshared", tiny_data,
                                                    (tmp_path / "cache-a", tmp_path / "cache-b"))
    assert code0 != 0 and code1 != 0
    for output in (out0, out1):
        errors = [line for line in output.splitlines() if line.startswith("error: FACERES_CACHE = ")]
        assert errors and "1 of 2 training processes cannot see" in errors[0], output[-3000:]


def test_a_checkpoint_of_another_run_is_refused_with_what_differs_and_left_as_it_is(tiny_data, tmp_path):
    # A run folder holding another run's checkpoint (copied by hand, or from other code): never resumed from.
    from faceres.config.arms import find_arm
    from faceres.config.schema import load_config
    from faceres.config.loader import parse_override
    from faceres.core.files import sha256_file
    from faceres.train.distributed import DistContext
    from faceres.train.loop import TrainingError, train_arm
    from faceres.train.runcache import run_directory, run_identity
    from faceres.train.data import FaceImages

    def config_with(lr: float):
        overrides = dict(parse_override(o) for o in _small(TINY))
        return load_config(REPO / "params.yaml", overrides={**overrides, "train.lr": lr})

    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    digest = FaceImages(tiny_data).digest()
    with mock.patch.dict(os.environ, {CACHE_ENV: str(tmp_path / "cache")}):
        first, second = config_with(0.002), config_with(0.003)
        train_arm(first, find_arm(first, "main"), tiny_data, tmp_path / "a", vgg_features=None, ctx=ctx,
                  progress=False, stop_after=1)
        source = run_directory(run_identity(first, find_arm(first, "main"), digest, 1).key) / CHECKPOINT_FILE
        target_dir = run_directory(run_identity(second, find_arm(second, "main"), digest, 1).key)
        target_dir.mkdir(parents=True)
        shutil.copy(source, target_dir / CHECKPOINT_FILE)
        before = sha256_file(target_dir / CHECKPOINT_FILE)
        with pytest.raises(TrainingError) as caught:
            train_arm(second, find_arm(second, "main"), tiny_data, tmp_path / "b", vgg_features=None, ctx=ctx,
                      progress=False)
    assert str(caught.value) == (
        f"{target_dir}: holds a checkpoint of another run (differs in: settings train.lr); not resumed and left "
        f"as it is; to train this run from step 0, delete {target_dir / CHECKPOINT_FILE}")
    assert sha256_file(target_dir / CHECKPOINT_FILE) == before and not (tmp_path / "b").exists()


def blind_restoration_run(celeba: Path, work: Path, seed: int, limit: int, overrides: dict) -> dict[str, float]:
    """One epoch of the main arm (params.yaml's cpu profile plus ``overrides``) on the first ``limit`` CelebA
    faces through the product's trainer (train_arm, in a fresh run cache); then the held-out test faces (unseen
    identities, the degrade stage's test degradation) restored with constant noise and scored by the evaluate
    stage's LPIPS, beside DEG, the degraded input itself. The spread below was measured with this function."""
    from faceres.config.arms import find_arm
    from faceres.config.schema import load_config
    from faceres.metrics.evaluate import EvalOptions, Networks, evaluate_folders
    from faceres.models.io import load_generator
    from faceres.pipeline.degrade import degrade_dataset
    from faceres.pipeline.layout import ground_truth_dir
    from faceres.restore.folder import restore_folder
    from faceres.train.distributed import DistContext
    from faceres.train.loop import train_arm
    from faceres.weights.load import load_vgg16_features

    config = load_config(REPO / "params.yaml", overrides={
        "data.source": "folder", "data.folder.train_dir": str(celeba / "images"),
        "data.folder.identities_csv": str(celeba / "identities.csv"), "data.folder.upscale": True,
        "data.folder.limit": limit, "profile": "cpu", "profiles.cpu.workers": 0, "seed": seed, **overrides,
    })
    vgg = load_vgg16_features()  # from the weights cache, before the run cache moves to `work`
    lpips_net = Networks(fid_inception=None, lpips_backbone=lambda net: vgg, identity_embedder=None)
    data, degraded, restored = work / "data", work / "degraded", work / "restored"
    prepare_dataset(config, data, progress=False)
    degrade_dataset(config, "bfr", data, degraded, workers=0)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with mock.patch.dict(os.environ, {CACHE_ENV: str(work / "cache")}):  # a fresh run cache: trains, never reuses
        summary = train_arm(config, find_arm(config, "main"), data, work / "model", vgg_features=vgg, ctx=ctx,
                            progress=False)
    restore_folder(load_generator(work / "model" / "generator.pt"), degraded / "test", restored, progress=False)
    options = EvalOptions(ci_level=None, progress=False)

    def scores(folder: Path) -> dict[str, float]:
        result = evaluate_folders(folder, ground_truth_dir(data), ["psnr", "lpips"], networks=lpips_net, options=options)
        return {name: result.summary["metrics"][name]["mean"] for name in ("psnr", "lpips")}

    deg, ours = scores(degraded / "test"), scores(restored)
    return {"steps": summary["steps"], "seconds": summary["seconds"], "test_images": len(list(restored.glob("*.png"))),
            "lpips_deg": deg["lpips"], "lpips_restored": ours["lpips"], "psnr_deg": deg["psnr"],
            "psnr_restored": ours["psnr"]}


# Run-to-run spread of blind_restoration_run at the test's settings (main arm at params.yaml's equal-gradient-share
# weights, 1,500 faces, 2 epochs: 336 steps, ~4 min of training here), measured on 2026-12-03 over seeds 0, 1, 2
# (each seed also redraws the split and the test degradations): held-out LPIPS gain over the degraded input
# 0.038 / 0.036 / 0.048 (restored 0.425 / 0.429 / 0.406 against 0.463 / 0.465 / 0.454), PSNR gain +0.00 / +0.16 /
# +0.14 dB. The restored LPIPS alone spreads by 0.023, half of it the split's (DEG spreads by 0.011), so the
# criterion is the gain's spread. (At one epoch and the unit weights of 2026-12-02 the gain was 0.073-0.088, but
# that objective lost 1.3 dB PSNR to its input on the validation split: docs/calibration.md, fifth round.)
LPIPS_GAIN_RANGE = 0.012
# The objective's promise: no worse than its input on PSNR (the pooled target: within 0.5 dB of DEG).
PSNR_LOSS_ALLOWED = 0.5


@pytest.mark.slow
def test_a_short_blind_restoration_run_on_celeba_beats_the_degraded_input_on_lpips_and_keeps_its_psnr(celeba, tmp_path):
    # Blind BFR as the product trains it: every default of params.yaml (the main arm: skips 4, alpha 1,
    # adversarial augmentation, L1 + VGG feature/style + adversarial at equal gradient shares, the BFR degradation
    # box) but the data, CelebA at 64 px, and the length.
    result = blind_restoration_run(celeba, tmp_path, seed=0, limit=1500, overrides={"profiles.cpu.epochs": 2})
    gain = result["lpips_deg"] - result["lpips_restored"]
    print(f"\nheld-out ({result['test_images']} faces, {result['steps']} steps, {result['seconds']:.0f} s): LPIPS "
          f"degraded {result['lpips_deg']:.4f}, restored {result['lpips_restored']:.4f}, gain {gain:.4f}; PSNR "
          f"degraded {result['psnr_deg']:.2f}, restored {result['psnr_restored']:.2f}")
    assert result["test_images"] >= 140 and result["steps"] >= 320
    # Better than the input by twice the spread of the gain between runs: a restorer that had not learnt would
    # be within one spread of the input (or above it), whatever its seed.
    assert gain > 2 * LPIPS_GAIN_RANGE
    # and not bought with the input's pixels (the unit-weight objective lost 1.3 dB to DEG on the validation split)
    assert result["psnr_restored"] >= result["psnr_deg"] - PSNR_LOSS_ALLOWED


def test_mirrored_flips_about_half_the_images_the_same_way_on_every_split():
    from faceres.train.data import mirrored

    images = torch.arange(4 * 3 * 2 * 5, dtype=torch.float32).reshape(4, 3, 2, 5).repeat(64, 1, 1, 1)
    positions = torch.arange(images.shape[0])
    out = mirrored(images, 0.5, seed=3, step=7, positions=positions)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    assert bool((flipped ^ kept).all())  # each image either mirrored left-right or untouched
    assert 0.4 < flipped.float().mean().item() < 0.6  # 256 draws at p = 0.5
    # One process or two (even / odd positions): the same images flip.
    halves = [mirrored(images[r::2], 0.5, 3, 7, positions[r::2]) for r in (0, 1)]
    assert torch.equal(torch.stack([halves[i % 2][i // 2] for i in range(len(images))]), out)
    assert not torch.equal(mirrored(images, 0.5, 3, 8, positions), out)  # another step, other draws
    assert mirrored(images, 0.0, 3, 7, positions) is images


def test_a_run_reused_from_the_run_cache_logs_the_curves_and_samples_a_fresh_run_logs(tiny_data, tmp_path,
                                                                                     monkeypatch):
    # The same training twice through the stage's entry point: trained, then copied from the run cache.
    import numpy as np
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from faceres.config.loader import parse_override
    from faceres.config.schema import load_config
    from faceres.pipeline.tracking import experiment_name, tracking_uri
    from faceres.pipeline.train import run_or_launch

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # the project root: mlflow.db goes here
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    # 2 steps, a sample grid at each, snapshots at each (the last: the result): a reused run has every sample's
    # generator
    overrides = dict(parse_override(o) for o in _small([*TINY, "profiles.cpu.epochs=2", "train.sample_every=1",
                                                         "train.snapshots=2"]))
    config = load_config(REPO / "params.yaml", overrides=overrides)
    for name in ("fresh", "reused"):
        run_or_launch(config, "main", tiny_data, tmp_path / name, track=True, forwarded=[])
    client = MlflowClient(tracking_uri(config))
    experiment = client.get_experiment_by_name(experiment_name(config)).experiment_id
    fresh, reused = sorted(client.search_runs([experiment], "tags.stage = 'train'"), key=lambda r: r.info.start_time)
    assert (fresh.data.tags["reused"], reused.data.tags["reused"]) == ("False", "True")

    def history(run, key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))

    # what the fresh run logged while training: every metric but the end's summary, which both runs log
    curve = {key for key in fresh.data.metrics if not key.startswith("final_")} - {"mean_images_per_s", "train_seconds"}
    assert {"g_l1", "d_loss", "images_per_s"} <= curve and len(history(fresh, "g_l1")) == 2
    assert {key: history(reused, key) for key in curve} == {key: history(fresh, key) for key in curve}

    def samples(run) -> dict[int, np.ndarray]:
        """The run's "samples" image series by step (MLflow's files images/samples+step+<k>+...png, the
        separator being MLflow's choice)."""
        steps = {}
        for artifact in client.list_artifacts(run.info.run_id, "images"):
            if match := re.fullmatch(r"images/samples(\W)step\1(\d+)\1.*\.png", artifact.path):
                local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))
                steps[int(match.group(2))] = np.asarray(Image.open(local), dtype=int)
        return steps

    drawn, redrawn = samples(fresh), samples(reused)
    assert sorted(drawn) == sorted(redrawn) == [1, 2]
    for step in drawn:  # the same grid (input | restored | ground truth), redrawn from the kept generators
        assert np.abs(drawn[step] - redrawn[step]).max() <= 2, step  # measured: 0 (identical)
