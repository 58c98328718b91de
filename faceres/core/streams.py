"""Counter-based random streams: numbers that are a pure function of (key, index), on any device.

Training draws one stream per image and step - its degradation parameters, its noise field, the generator's
noise inputs - keyed by (seed, step, global position). With ``torch.Generator`` that is one generator object
and one kernel launch per image, CPU generators force host-to-device copies of every noise field, and CUDA
generators cannot even be built where no GPU is (so CPU tests could not check the GPU path). Here a batch of
streams is one tensor expression on the batch's own device:

- no generator state and no host synchronisation: keys are int64 tensors, the draws integer ops on them;
- the integers are the same on every device; the float transforms after them (log and cos of Box-Muller)
  may differ by an ulp between device types, so replay is exact on the same device type and equal to
  ~1e-6 across device types;
- fake and meta tensors pass through (tests/test_device.py runs a training step on fake CUDA tensors).

Keys come from :func:`faceres.core.seeds.key_of` (host-side, sha256 of their parts).

Construction. A key is a 63-bit integer held as two 32-bit words in int64 lanes, so every product of a word
and the 27-bit multiplier of :func:`_mix32` stays below 2**63. Word i of stream k is four rounds of
:func:`_mix32` over i mixed with the key's two (pre-mixed) words; uniforms take 53 (float64) or 24 (float32)
bits of such words. tests/test_streams.py checks the output against scipy's distributions and for
correlation between neighbouring indices and neighbouring keys.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
_MULTIPLIER = 0x45D9F3B  # < 2**27: the integer hash of T. Mueller (lowbias avalanche in 2 rounds)
_GOLDEN = 0x9E3779B9


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32 -> 32 bit avalanche (x holds values in [0, 2**32) in int64)."""
    x = ((x >> 16) ^ x) * _MULTIPLIER & _MASK32
    x = ((x >> 16) ^ x) * _MULTIPLIER & _MASK32
    return (x >> 16) ^ x


def _words(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _mix32(keys & _MASK32), _mix32((keys >> 32) ^ _GOLDEN)


def keys_for(base: int, indices: torch.Tensor) -> torch.Tensor:
    """Keys (same shape as the int64 `indices`) of the sub-streams `indices` of stream `base`."""
    return split(torch.full_like(indices, base), indices)


def split(keys: torch.Tensor, salt: torch.Tensor | int) -> torch.Tensor:
    """Child keys of `keys`, one per salt (an int or a broadcastable int64 tensor): independent streams."""
    low, high = _words(keys)
    salt = salt if isinstance(salt, torch.Tensor) else torch.full_like(keys, int(salt) & (2**63 - 1))
    salt_low, salt_high = _words(salt)
    new_low = _mix32(low ^ _mix32(salt_low ^ high))
    new_high = _mix32(high ^ _mix32(salt_high ^ new_low)) & 0x7FFFFFFF
    return (new_high << 32) | new_low


def _bits(keys: torch.Tensor, count: int) -> torch.Tensor:
    """(*keys.shape, count) 32-bit words: word i of each key's stream."""
    low, high = (w[..., None] for w in _words(keys))
    index = torch.arange(count, dtype=torch.int64, device=keys.device)
    x = _mix32(index ^ low)
    x = _mix32(x ^ high)
    x = _mix32((x + low) & _MASK32)
    return _mix32(x ^ high)


def uniform(keys: torch.Tensor, count: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(*keys.shape, count) uniforms in [0, 1): 53 random bits for float64, 24 for float32."""
    if dtype == torch.float64:
        words = _bits(keys, 2 * count)
        mantissa = (words[..., 0::2] >> 5) * (1 << 26) + (words[..., 1::2] >> 6)
        return mantissa.to(torch.float64) * 2.0**-53
    if dtype != torch.float32:
        raise ValueError(f"uniform: dtype {dtype}: allowed: torch.float64, torch.float32")
    return (_bits(keys, count) >> 8).to(torch.float32) * 2.0**-24


def normal(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(*keys.shape, *shape) float32 standard normals (Box-Muller on 24-bit uniforms; |z| <= 5.8).

    Both outputs of each Box-Muller pair are used (r cos t fills the first half of a stream's values, r sin t
    the second): two 32-bit words per two normals, half the hashing of one normal per pair.
    """
    count = 1
    for size in shape:
        count *= int(size)
    pairs = (count + 1) // 2
    words = _bits(keys, 2 * pairs)
    radius_u = ((words[..., 0::2] >> 8) + 1).to(torch.float32) * 2.0**-24  # (0, 1]: log is finite
    angle = (words[..., 1::2] >> 8).to(torch.float32) * (2.0**-24 * 2.0 * torch.pi)
    radius = torch.sqrt(-2.0 * torch.log(radius_u))
    z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)[..., :count]
    return z.reshape(*keys.shape, *shape)
