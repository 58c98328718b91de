"""Counter-based random streams (faceres.core.streams) and seeds from parts (faceres.core.seeds): the distributions
against scipy, independence between neighbouring indices and keys, and values pinned by hand-computed hashes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from scipy import stats

from faceres.core import streams
from faceres.degrade.sampling import image_seed
from faceres.core.seeds import hash64, key_of, unit_of


def test_seeds_are_the_documented_sha256_prefixes():
    text = "augment/0/12/3"
    prefix = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    assert hash64(text) == prefix
    assert key_of("augment", 0, 12, 3) == prefix >> 1 < 2**63
    assert unit_of("augment", 0, 12, 3) == prefix / 2**64
    as_json = json.dumps([7, "bfr", "000123.jpg"]).encode()
    assert image_seed(7, "bfr", "000123.jpg") == int.from_bytes(hashlib.sha256(as_json).digest()[:8], "big") & (2**63 - 1)


def test_uniforms_and_normals_follow_their_distributions():
    keys = streams.keys_for(key_of("test"), torch.arange(4000))
    u64 = streams.uniform(keys, 7).numpy()
    assert u64.dtype == np.float64 and 0 <= u64.min() and u64.max() < 1
    for column in u64.T:  # each of the 7 degradation parameters' uniforms, over 4000 images
        assert stats.kstest(column, "uniform").pvalue > 1e-3
    u32 = streams.uniform(keys[:50], 2000, torch.float32).numpy().ravel()
    assert stats.kstest(u32, "uniform").pvalue > 1e-3
    z = streams.normal(keys[:16], (3, 40, 40)).numpy()
    assert z.shape == (16, 3, 40, 40) and z.dtype == np.float32
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(z.std() - 1) < 0.01 and np.abs(z).max() <= 5.8


def test_neighbouring_indices_and_keys_are_uncorrelated():
    keys = streams.keys_for(key_of("noise"), torch.arange(64))
    z = streams.normal(keys, (3, 48, 48)).double()
    bound = 4 / np.sqrt(z[..., :-1].numel())  # 4 sigma of a correlation estimate from n samples

    def corr(a, b):
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    assert abs(corr(z[..., :-1], z[..., 1:])) < bound  # horizontal neighbours
    assert abs(corr(z[..., :-1, :], z[..., 1:, :])) < bound  # vertical neighbours
    assert abs(corr(z[:, 0], z[:, 1])) < 4 / np.sqrt(z[:, 0].numel())  # channels
    assert abs(corr(z[:-1], z[1:])) < 4 / np.sqrt(z[:-1].numel())  # neighbouring images (keys)
    child = streams.split(keys, 1)
    assert len(set(child.tolist()) | set(keys.tolist())) == 128  # child streams are new keys
    assert abs(corr(streams.normal(child, (3, 48, 48)).double(), z)) < 4 / np.sqrt(z.numel())


def test_a_stream_depends_on_its_key_only():
    keys = streams.keys_for(5, torch.arange(10))
    alone = streams.normal(keys[3:4], (2, 8, 8))
    assert torch.equal(streams.normal(keys, (2, 8, 8))[3:4], alone)
    assert torch.equal(streams.uniform(keys, 7)[3], streams.uniform(keys[3:4], 7)[0])
    assert not torch.equal(streams.normal(keys[4:5], (2, 8, 8)), alone)
    assert keys.dtype == torch.int64 and int(keys.min()) >= 0


def test_the_float_dtype_of_a_uniform_is_checked():
    with pytest.raises(ValueError, match="allowed: torch.float64, torch.float32"):
        streams.uniform(torch.zeros(2, dtype=torch.int64), 3, torch.float16)
