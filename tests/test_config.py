"""params.yaml -> typed config: the shipped values, and one-line errors for invalid ones."""

from __future__ import annotations

import pytest

from faceres.config.schema import config_from_dict, load_config
from faceres.models.architecture import MAX_SKIPS, skip_nodes
from faceres.config.loader import parse_override
from faceres.core.errors import ConfigError
from tests.conftest import REPO


def test_shipped_params_hold_the_papers_reference_values():
    config = load_config(REPO / "params.yaml")
    paper = config.profiles["paper"]
    assert (paper.resolution, paper.batch, paper.epochs, paper.gpus) == (512, 32, 400, 8)
    assert config.train.lr == pytest.approx(2.5e-3)
    assert config.train.betas == (0.0, 0.99)
    assert (config.skips, config.alpha, config.aug) == (4, 1.0, True)
    assert config.degrade.bfr.kernel_size == 41 and config.degrade.bfr.blur_sigma == (0.1, 10.0)


def test_default_profile_is_cpu_sized_and_paper_profile_is_one_override_away(params):
    cpu = config_from_dict(params)
    assert cpu.profile == "cpu" and cpu.resolution <= 128 and cpu.skips == 4
    paper = config_from_dict(params, overrides={"profile": "paper", "skips": 6})
    assert paper.resolution == 512 and paper.scale.batch == 32 and paper.skips == 6


def test_skip_nodes_match_the_paper():
    assert skip_nodes(512) == [8, 16, 32, 64, 128, 256]  # appendix C.1: six possible nodes at 512 px
    assert skip_nodes(256) == [8, 16, 32, 64, 128, 256]
    assert skip_nodes(128) == [8, 16, 32, 64, 128]  # smaller images keep the nodes 8..64 (spec section 1)
    assert skip_nodes(64) == [8, 16, 32, 64]
    assert len(skip_nodes(512)) == MAX_SKIPS


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"skips": 7}, "skips = 7: allowed: an integer 0..6"),
        ({"skips": -1}, "skips = -1"),
        ({"skips": 6}, "skips = 6: allowed: 0..4 at resolution 64 (skip nodes 8..64 px"),
        ({"skips": 5, "profiles.cpu.resolution": 32}, "skips = 5: allowed: 0..3 at resolution 32"),
        # the fix named: the key and a value that works, and its cost ((256 / 64)^2 = 16x the pixels)
        ({"skips": 6}, "to run it, also set -S profiles.cpu.resolution=256 (about 16x the compute of 64 px"),
        ({"skips": 5, "profiles.cpu.resolution": 32}, "-S profiles.cpu.resolution=128 (about 16x the compute of 32"),
        ({"skips": 2.5}, "skips = 2.5: allowed: an integer"),
        ({"skips": True}, "skips = True: allowed: an integer"),
        ({"alpha": -0.1}, "alpha = -0.1: allowed: a finite number >= 0"),
        ({"alpha": "big"}, "alpha = 'big': allowed: a finite number"),
        ({"alpha": "1e999"}, "alpha = inf: allowed: a finite number"),
        ({"aug": "yes"}, "aug = 'yes': allowed: true or false"),
        ({"profile": "tpu"}, "profile = 'tpu': allowed: one of cpu, gpu, study, paper"),
        ({"profiles.paper.batch": 36},
         "profiles.paper.batch = 36: allowed: a global batch that splits over gpus = 8 into per-GPU batches that "
         "are multiples of the discriminator's minibatch-std group of 4 (e.g. 32)"),
        ({"profiles.cpu.batch": 6}, "profiles.cpu.batch = 6: allowed: a global batch that splits over gpus = 0"),
        ({"profiles.cpu.r1_gamma": -1}, "profiles.cpu.r1_gamma = -1: allowed: a number >= 0"),
        ({"profiles.paper.checkpoint_minutes": 0}, "profiles.paper.checkpoint_minutes = 0: allowed: null"),
        ({"profiles.cpu.resolution": 100}, "profiles.cpu.resolution = 100: allowed: a power of two in 16..512"),
        ({"profiles.cpu.resolution": 8}, "profiles.cpu.resolution = 8"),
        ({"profiles.cpu.width": 0}, "profiles.cpu.width = 0: allowed: a channel multiplier in (0, 1]"),
        ({"profiles.paper.precision": "fp16"}, "profiles.paper.precision = 'fp16': allowed: one of auto, fp32, tf32, bf16"),
        ({"profiles.cpu.channels_last": "yes"}, "profiles.cpu.channels_last = 'yes': allowed: true or false"),
        ({"data.source": "ffhq"}, "data.source = 'ffhq': allowed: one of synthetic, folder"),
        ({"data.on_bad_image": "ignore"}, "data.on_bad_image = 'ignore': allowed: one of fail, skip"),
        ({"degrade.bfr.blur_sigma": [5.0, 1.0]}, "degrade.bfr.blur_sigma = [5.0, 1.0]: allowed: [low, high]"),
        ({"degrade.bfr.blur_sigma": [1.0]}, "degrade.bfr.blur_sigma = [1.0]: allowed: a list of 2 values"),
        ({"degrade.bfr.kernel_size": 40}, "degrade.bfr.kernel_size = 40: allowed: an odd integer >= 3"),
        ({"degrade.bfr.jpeg_quality": [60, 101]}, "degrade.bfr.jpeg_quality = [60, 101]"),
        ({"degrade.splits": ["valid"]}, "degrade.splits[0] = 'valid': allowed: one of train, val, test"),
        ({"degrade.sr16.factor": 12}, "degrade.sr16.factor = 12: allowed: a power of two >= 2"),
        ({"profiles.cpu.resolution": 32, "skips": 1}, "degrade.sr16.factor = 16: allowed: a factor leaving >= 4 px"),
        ({"profiles.cpu.resolution": 16, "skips": 1}, "degrade.sr8.factor = 8"),
        ({"train.betas": [0.0, 1.0]}, "train.betas = [0.0, 1.0]: allowed: two Adam betas in [0, 1)"),
    ],
)
def test_invalid_values_stop_with_one_line_naming_key_value_and_allowed(params, overrides, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict(params, overrides=overrides)
    message = str(info.value)
    assert expected in message
    assert message.startswith("params.yaml: ") and "\n" not in message


def test_unknown_and_missing_keys_are_named(params):
    params["data"] = dict(params["data"], sorce="folder")
    with pytest.raises(ConfigError, match=r"unknown key 'data.sorce' at data; allowed: .*source"):
        config_from_dict(params)
    del params["data"]["sorce"]
    del params["alpha"]
    with pytest.raises(ConfigError, match=r"missing key 'alpha'"):
        config_from_dict(params)


def test_unknown_task_is_rejected(params):
    config = config_from_dict(params)
    with pytest.raises(ConfigError, match="task = 'sr4': allowed: bfr, sr8, sr16"):
        config.degrade.task("sr4")


def test_blur_scales_with_resolution_by_hand(params):
    bfr = config_from_dict(params).degrade.bfr
    at_128 = bfr.at_resolution(128)
    assert at_128.blur_sigma == pytest.approx((0.1 / 4, 10.0 / 4))
    assert at_128.kernel_size == 11  # round(41 / 4) = 10, made odd
    assert at_128.downsample == bfr.downsample and at_128.jpeg_quality == bfr.jpeg_quality
    assert bfr.at_resolution(512) == bfr


def test_override_parsing_follows_yaml():
    assert parse_override("skips=6") == ("skips", 6)
    assert parse_override("aug=false") == ("aug", False)
    assert parse_override("degrade.bfr.blur_sigma=[0.2, 3]") == ("degrade.bfr.blur_sigma", [0.2, 3])
    with pytest.raises(ConfigError, match="allowed: KEY=VALUE"):
        parse_override("skips")


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the parameters file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("skips: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line"):
        load_config(bad)


def test_exponent_floats_that_yaml_1_1_reads_as_strings_are_numbers(params):
    # `dvc exp run -S train.lr=1e-3` writes 1e-3, which PyYAML reads as the string '1e-3'
    config = config_from_dict(params, overrides={"train.lr": "1e-3", "alpha": "3E0"})
    assert config.train.lr == 0.001 and config.alpha == 3.0
