"""Generator / discriminator: shapes against the spec tables, layers against hand-written references."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from faceres.core.errors import ConfigError
from faceres.models.build import (
    ModelConfig,
    build_discriminator,
    build_generator,
    build_models,
    model_summary,
    parameter_counts,
)
from faceres.models.generator import SkipMerge
from faceres.models.layers import AttentionPooling, MinibatchStdDev, StyleLayer, modulate_weights, modulated_conv2d

# Appendix Table 4 (encoder) and Table 5 (decoder) at 512 px: (resolution, channels) of each block's output.
SPEC_ENCODER_512 = [(256, 32), (128, 64), (64, 128), (32, 256), (16, 512), (8, 512), (4, 512)]
SPEC_DECODER_512 = [(8, 512), (16, 512), (32, 512), (64, 256), (128, 128), (256, 64), (512, 32)]
# The same tables truncated to 64 px and multiplied by 0.25 (min 16 channels), worked out by hand.
SPEC_ENCODER_64_W025 = [(32, 64), (16, 128), (8, 128), (4, 128)]
SPEC_DECODER_64_W025 = [(8, 128), (16, 128), (32, 128), (64, 64)]


def _images(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _record_block_outputs(generator) -> tuple[list, list, list]:
    encoder_shapes, decoder_shapes, handles = [], [], []
    for block in generator.encoder.trunk.blocks.values():
        handles.append(  # the first block also returns its full-size hidden feature
            block.register_forward_hook(lambda m, i, out: encoder_shapes.append(tuple((out[0] if isinstance(out, tuple) else out).shape)))
        )
    for block in generator.decoder.blocks.values():
        handles.append(block.register_forward_hook(lambda m, i, out: decoder_shapes.append(tuple(out[0].shape))))
    return encoder_shapes, decoder_shapes, handles


def _set_noise_strength(generator, value: float) -> None:
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if name.endswith("noise_strength"):
                parameter.fill_(value)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("skips", range(7))
def test_generator_output_shape_for_every_skips_value_at_64px(skips):
    if skips > 4:  # the nodes 8, 16, 32 and the full-size 64 exist at a 64 px input
        with pytest.raises(ConfigError, match=rf"skips = {skips}: allowed: 0\.\.4 at resolution 64"):
            build_generator(64, skips, 0.25)
        return
    generator = build_generator(64, skips, 0.25)
    assert generator.skip_resolutions == (8, 16, 32, 64)[:skips]
    encoder_shapes, decoder_shapes, _ = _record_block_outputs(generator)
    out = generator(_images(2, 64), noise_mode="const")
    assert out.shape == (2, 3, 64, 64)
    assert torch.isfinite(out).all()
    assert encoder_shapes == [(2, c, r, r) for r, c in SPEC_ENCODER_64_W025]
    assert decoder_shapes == [(2, c, r, r) for r, c in SPEC_DECODER_64_W025]


@pytest.mark.parametrize("seed", range(4))
def test_the_untrained_generator_outputs_a_near_grey_image_whatever_the_seed(seed):
    # With StyleGAN2's ToRGB init (std 1) the sum of one random image per resolution came out at std 0.7-1.1
    # with a mean down to -1.0 (seed 1) at these settings: a restorer first had to unlearn it (layers.TORGB_INIT_STD).
    generator = build_generator(64, 4, 0.125, seed=seed).eval()
    with torch.no_grad():
        out = generator(_images(8, 64, seed), noise_mode="const")
    assert float(out.std()) < 0.2 and abs(float(out.mean())) < 0.2 and float(out.abs().max()) < 1.0


@pytest.mark.parametrize("resolution", [16, 32, 128])
def test_other_resolutions_keep_the_4x4_bottleneck(resolution):
    generator, discriminator = build_models(ModelConfig(resolution=resolution, skips=1, width=0.125))
    encoder_shapes, decoder_shapes, _ = _record_block_outputs(generator)
    x = _images(2, resolution)
    assert generator(x, noise_mode="none").shape == x.shape
    assert discriminator(x).shape == (2, 1)
    assert encoder_shapes[-1] == (2, 64, 4, 4)  # 512 * 0.125
    assert decoder_shapes[0][2:] == (8, 8) and decoder_shapes[-1][2:] == (resolution, resolution)
    assert len(encoder_shapes) == len(decoder_shapes) == int(math.log2(resolution)) - 2


def test_full_width_512px_matches_spec_tables_and_runs_on_cpu():
    counts = parameter_counts(512, 1.0, skips=6)
    print(f"\nparameters at 512 px, width 1, skips 6: {counts}")
    x = _images(1, 512)
    with torch.no_grad():
        for skips in (0, 6):  # the two ends of the valid range 0..6
            generator = build_generator(512, skips, 1.0).eval()
            encoder_shapes, decoder_shapes, _ = _record_block_outputs(generator)
            out = generator(x, noise_mode="const")
            assert out.shape == (1, 3, 512, 512) and torch.isfinite(out).all()
            assert encoder_shapes == [(1, c, r, r) for r, c in SPEC_ENCODER_512]
            assert decoder_shapes == [(1, c, r, r) for r, c in SPEC_DECODER_512]
        logits = build_discriminator(512, 1.0)(x)
    assert logits.shape == (1, 1) and torch.isfinite(logits).all()


def _resblock_params(c_in, c_out):
    return (9 * c_in * c_out + c_out) + (9 * c_out * c_out + c_out) + c_in * c_out  # conv0, conv1, 1x1 shortcut


def _style_layer_params(c_in, c_out, w_dim, kernel=3):
    return (w_dim * c_in + c_in) + kernel * kernel * c_in * c_out + c_out + 1  # affine, weight, bias, noise


def _expected_counts(encoder_table, decoder_table, image_res, skips, w_dim, mapping_layers=2):
    """Parameter counts derived from the channel tables by hand (independent of the module code)."""
    encoder, c_in = 0, 3
    for _, c_out in encoder_table:
        encoder += _resblock_params(c_in, c_out)
        c_in = c_out
    c = encoder_table[-1][1]
    discriminator = encoder + (9 * (c + 1) * c + c) + (16 * c * c + c) + (c + 1)
    encoder_channels = dict(encoder_table)
    encoder_channels[image_res] = encoder_table[0][1]  # full-size node: the first ResBlock's hidden feature
    decoder, c_prev = 0, c
    for index, (res, c_out) in enumerate(decoder_table):
        decoder += _style_layer_params(c_prev, c_out, w_dim) + _style_layer_params(c_out, c_out, w_dim)
        decoder += (w_dim * c_out + c_out) + 3 * c_out + 3  # ToRGB
        if index < skips:
            decoder += encoder_channels[res] * c_prev + c_prev  # 'add' skip: 1x1 projection
        c_prev = c_out
    mapping = mapping_layers * (w_dim * w_dim + w_dim)
    return {"generator": encoder + mapping + decoder, "discriminator": discriminator, "generator.encoder": encoder}


@pytest.mark.parametrize(
    "resolution, width, skips, encoder_table, decoder_table",
    [
        (512, 1.0, 4, SPEC_ENCODER_512, SPEC_DECODER_512),
        (512, 1.0, 6, SPEC_ENCODER_512, SPEC_DECODER_512),
        (64, 0.25, 3, SPEC_ENCODER_64_W025, SPEC_DECODER_64_W025),
        (64, 0.25, 4, SPEC_ENCODER_64_W025, SPEC_DECODER_64_W025),
    ],
)
def test_parameter_counts_match_hand_count_from_spec_tables(resolution, width, skips, encoder_table, decoder_table):
    counts = parameter_counts(resolution, width, skips=skips)
    print(f"\nparameters at {resolution} px, width {width}, skips {skips}: {counts}")
    expected = _expected_counts(encoder_table, decoder_table, resolution, skips, w_dim=encoder_table[-1][1])
    for key, value in expected.items():
        assert counts[key] == value, key


def test_model_summary_lists_every_block_and_the_totals():
    text = model_summary(64, 0.25, skips=2)
    counts = parameter_counts(64, 0.25, skips=2)
    assert "64 px" in text and "nodes 8,16" in text
    for name in ("encoder.b64", "encoder.b8", "encoder.pool", "mapping", "decoder.b8", "decoder.b64", "epilogue"):
        assert name in text
    assert f"{counts['generator']:,}" in text and f"{counts['discriminator']:,}" in text
    assert text.count("add skip") == 2


def test_model_config_rejects_bad_values_with_one_line_errors():
    with pytest.raises(ConfigError, match="resolution = 100: allowed: one of "):
        ModelConfig(resolution=100)
    with pytest.raises(ConfigError, match=r"width = 0: allowed: a number in \(0"):
        ModelConfig(width=0)
    with pytest.raises(ConfigError, match="skip_mode = 'mul': allowed: "):
        ModelConfig(skip_mode="mul")
    with pytest.raises(ConfigError, match="skips = True"):
        ModelConfig(skips=True)
    with pytest.raises(ConfigError, match="params.yaml:model: unknown key 'skip'"):
        ModelConfig.from_mapping({"skip": 4}, source="params.yaml:model")
    with pytest.raises(ConfigError, match=r"params.yaml:model: skips = 6: allowed: 0\.\.5 at resolution 128"):
        ModelConfig.from_mapping({"resolution": 128, "skips": 6}, source="params.yaml:model")
    assert ModelConfig.from_mapping({"resolution": 128, "skips": 4}).to_dict()["skips"] == 4


def test_wrong_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"image: expected shape \[\*, 3, 64, 64\], got \[1, 3, 32, 32\]"):
        build_generator(64, 1, 0.25)(_images(1, 32))


# ---------------------------------------------------------------- layers vs references


def _attention_pool_by_hand(x: torch.Tensor) -> torch.Tensor:
    n_batch, channels, height, width = x.shape
    out = torch.zeros(n_batch, channels, dtype=x.dtype)
    for n in range(n_batch):
        positions = [x[n, :, h, w] for h in range(height) for w in range(width)]
        mean = sum(positions) / len(positions)
        scores = [float(torch.dot(p, mean)) / math.sqrt(channels) for p in positions]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        for p, e in zip(positions, exps):
            out[n] += p * (e / sum(exps))
    return out


def test_attention_pooling_has_no_parameters_and_matches_a_loop():
    pool = AttentionPooling()
    assert list(pool.parameters()) == [] and pool.state_dict() == {}
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(pool(x), _attention_pool_by_hand(x))


def test_attention_pooling_is_permutation_invariant_over_positions():
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(1))
    permutation = torch.randperm(16, generator=torch.Generator().manual_seed(2))
    shuffled = x.flatten(2)[:, :, permutation].reshape_as(x)
    assert not torch.equal(shuffled, x)
    torch.testing.assert_close(AttentionPooling()(shuffled), AttentionPooling()(x))


def test_demodulated_weights_have_unit_norm_per_sample_and_output_channel():
    layer = StyleLayer(6, 5, w_dim=7, resolution=8)
    w = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    weights = modulate_weights(layer.weight, layer.affine(w), demodulate=True)
    assert weights.shape == (4, 5, 6, 3, 3)
    norms = weights.flatten(2).norm(dim=2)
    torch.testing.assert_close(norms, torch.ones(4, 5))


def _modulated_conv_by_loop(x, weight, styles, demodulate):
    outputs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        outputs.append(F.conv2d(x[n : n + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outputs)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel", [1, 3])
def test_modulated_conv_equals_a_per_sample_loop(fused, demodulate, kernel):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 4, kernel, kernel, generator=g, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=g, dtype=torch.float64)
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=fused)
    torch.testing.assert_close(got, _modulated_conv_by_loop(x, weight, styles, demodulate))


def test_generator_fused_and_unfused_modulation_agree():
    generator = build_generator(32, 2, 0.125)
    x = _images(3, 32)
    torch.testing.assert_close(
        generator(x, noise_mode="const", fused_modconv=True),
        generator(x, noise_mode="const", fused_modconv=False),
        rtol=1e-4,
        atol=1e-4,
    )


def _minibatch_std_by_hand(x: torch.Tensor, group_size: int, num_channels: int) -> torch.Tensor:
    n_batch, channels, height, width = x.shape
    group = min(group_size, n_batch)
    n_groups, per_slice = n_batch // group, channels // num_channels
    extra = torch.zeros(n_batch, num_channels, height, width, dtype=x.dtype)
    for g in range(n_groups):
        members = [i for i in range(n_batch) if i % n_groups == g]
        for f in range(num_channels):
            stds = []
            for c in range(f * per_slice, (f + 1) * per_slice):
                for h in range(height):
                    for w in range(width):
                        values = [float(x[i, c, h, w]) for i in members]
                        mean = sum(values) / len(values)
                        variance = sum((v - mean) ** 2 for v in values) / len(values)
                        stds.append(math.sqrt(variance + 1e-8))
            for i in members:
                extra[i, f] = sum(stds) / len(stds)
    return torch.cat([x, extra], dim=1)


@pytest.mark.parametrize("batch, group_size, num_channels", [(8, 4, 1), (8, 2, 2), (3, 4, 1), (4, 4, 2)])
def test_minibatch_stddev_matches_hand_computation(batch, group_size, num_channels):
    x = torch.randn(batch, 4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    got = MinibatchStdDev(group_size, num_channels)(x)
    torch.testing.assert_close(got, _minibatch_std_by_hand(x, group_size, num_channels))


def test_minibatch_stddev_rejects_a_batch_not_divisible_by_the_group():
    with pytest.raises(ConfigError, match="batch size 6 is not divisible by .*mbstd_group_size=4"):
        MinibatchStdDev(4)(torch.randn(6, 4, 2, 2))


def test_discriminator_output_and_batch_coupling():
    discriminator = build_discriminator(32, 0.125, mbstd_group_size=2)
    x = _images(4, 32)
    logits = discriminator(x)
    assert logits.shape == (4, 1)
    # Through the minibatch-stddev layer a sample's logit depends on its group partner (i and i+2) only.
    y = x.clone()
    y[2] = _images(1, 32, seed=9)[0]
    changed = (discriminator(y) - logits).abs().flatten() > 1e-6
    assert changed.tolist() == [True, False, True, False]


def test_add_skip_merge_matches_hand_computation():
    merge = SkipMerge(encoder_channels=3, decoder_channels=5, resolution=4, mode="add")
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    with torch.no_grad():
        merge.project.bias.normal_(generator=g)
    weight = merge.project.weight[:, :, 0, 0] / math.sqrt(3)
    expected = (x + torch.einsum("oc,nchw->nohw", weight, e) + merge.project.bias.reshape(1, 5, 1, 1)) / math.sqrt(2)
    torch.testing.assert_close(merge(x, e), expected)


@pytest.mark.parametrize("skip_mode", ["add", "concat"])
def test_skip_merges_receive_the_encoder_feature_of_their_resolution(skip_mode):
    generator = build_generator(64, 4, 0.25, skip_mode=skip_mode)
    encoder_outputs, merge_inputs = {}, {}

    def record(module, inputs, out):
        if isinstance(out, tuple):  # the first block: (output, full-size hidden feature)
            out, encoder_outputs[module.resolution] = out
        encoder_outputs[module.resolution // 2] = out

    for block in generator.encoder.trunk.blocks.values():
        block.register_forward_hook(record)
    first = generator.encoder.trunk.blocks["b64"]
    conv0_outputs = []
    first.conv0.register_forward_hook(lambda m, i, out: conv0_outputs.append(out))
    for block in generator.decoder.blocks.values():
        if block.skip is not None:
            block.skip.register_forward_hook(lambda m, i, out: merge_inputs.__setitem__(m.resolution, i[1]))
    generator(_images(2, 64), noise_mode="none")
    assert sorted(merge_inputs) == [8, 16, 32, 64]
    for res, feature in merge_inputs.items():
        assert feature is encoder_outputs[res]
    assert merge_inputs[64] is conv0_outputs[0]  # the 64 px node is the first conv's full-size feature


# ---------------------------------------------------------------- noise, seeds, determinism


def test_noise_modes():
    generator = build_generator(64, 0, 0.25).eval()
    x = _images(2, 64)
    # StyleGAN2 initialises every noise strength to 0, so at init noise has no effect at all.
    reference = generator(x, noise_mode="none")
    torch.testing.assert_close(generator(x, noise_mode="random"), reference)
    _set_noise_strength(generator, 0.5)
    const, none = generator(x, noise_mode="const"), generator(x, noise_mode="none")
    assert torch.equal(generator(x, noise_mode="const"), const)
    assert torch.equal(generator(x, noise_mode="none"), none)
    assert not torch.allclose(const, none, atol=1e-3)
    keyed = [generator(x, noise_mode="random", noise_keys=torch.tensor([s, 5])) for s in (1, 1, 2)]
    assert torch.equal(keyed[0], keyed[1])
    assert not torch.allclose(keyed[0][0], keyed[2][0], atol=1e-3)
    torch.testing.assert_close(keyed[0][1], keyed[2][1])  # a sample's noise is its key's, whatever the batch
    torch.testing.assert_close(generator(x[1:], noise_mode="random", noise_keys=torch.tensor([5])), keyed[0][1:])
    # Without a generator the module's own stream advances, and re-seeding replays it.
    generator.seed_noise(7)
    first, second = generator(x), generator(x)
    assert not torch.allclose(first, second, atol=1e-3)
    generator.seed_noise(7)
    assert torch.equal(generator(x), first)
    with pytest.raises(ValueError, match="noise_mode='fixed'"):
        generator(x, noise_mode="fixed")


def test_initialisation_is_seeded_and_leaves_the_global_rng_alone():
    rng_state = torch.get_rng_state()
    generators = [build_generator(32, 1, 0.125, seed=s) for s in (3, 3, 4)]
    assert torch.equal(torch.get_rng_state(), rng_state)
    a, b, c = (g.state_dict() for g in generators)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.trunk.blocks.b32.conv0.weight"], c["encoder.trunk.blocks.b32.conv0.weight"])
    assert generators[0].noise_seed == generators[1].noise_seed != generators[2].noise_seed


def test_generator_survives_deepcopy_and_pickle_after_drawing_noise():
    generator = build_generator(32, 1, 0.125)
    x = _images(1, 32)
    generator(x)  # creates the module's own noise generator
    for clone in (copy.deepcopy(generator), pickle.loads(pickle.dumps(generator))):
        torch.testing.assert_close(clone(x, noise_mode="const"), generator(x, noise_mode="const"))
