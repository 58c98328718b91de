"""Procedural face renderer: the pipeline's embedded default data source.

A fresh clone runs end to end without downloading a dataset because faces are rendered here, aligned like
FFHQ / CelebA-HQ crops (face centred, eyes at ~47 % of the height, ~22 % of the width apart).

- An identity (:class:`FaceIdentity`: head shape, skin, hair style and colour, eyes, brows, nose, lips,
  beard, freckles, moles, backdrop, clothes and the seed of its skin / hair textures) is drawn from
  ``(seed, identity)``.
- An image of that identity (:class:`FaceVariation`: a few degrees of yaw / pitch / roll, framing, light
  direction / intensity / tint, smile, mouth opening, eye openness, brow raise, gaze, background) is drawn from
  ``(seed, identity, image)``.
- :func:`render_face` draws the pair directly at the target size (16 ... 512, a power of two): analytic shapes
  with signed-distance anti-aliasing over one pixel, a height field for the facial relief shaded with
  wrapped-Lambert light, and seeded value-noise textures for skin pores and hair strands, band-limited to the
  pixel grid so that small renders do not alias.

Renders are byte-identical on every machine: the random draws are exact (``Generator.random`` /
``integers`` only), and the per-pixel arithmetic uses only IEEE-exact numpy operations (+ - * /, sqrt,
floor, min / max, indexing) with no reductions, BLAS or transcendental functions whose last bit may depend on
the platform's SIMD code paths; the few scalar sines come from a fixed Taylor polynomial.

Over 1,000 lines, one idea (it imports only `errors`): the renderer's draw order is its reproducibility
contract, so its sections (parameters, sampling, math, canvas, painters, API) stay in one reviewed file.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from faceres.core.errors import DataError

SIZES: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
HAIR_STYLES: tuple[str, ...] = ("short", "long", "fringe", "side_part", "curly", "buzz")

RGB = tuple[float, float, float]
Mole = tuple[float, float, float]  # (s, t, radius) in face coordinates

# Stream tags keep the identity and variation streams apart. SeedSequence pads short entropy with zeros, so
# untagged [seed, identity] and [seed, identity, 0] would give the same stream.
_IDENTITY_STREAM = 0x1D
_VARIATION_STREAM = 0x7A
_TEXTURE_STREAM = 0x7E
_BACKDROP_STREAM = 0xBD
_TEXTURE_LATTICE = 256  # value-noise lattice side (power of two: indices wrap with a bit mask)
_BACKDROP_LATTICE = 16  # the backdrop's blotches are a few cells across ...
_COARSE_NODES = 33  # ... and smooth enough to interpolate from this many nodes across the image
_ROLL_PIVOT = (0.0, 0.45)  # the head turns about the neck
# Images are painted in bands of about this many pixels: numpy temporaries then stay under glibc's mmap
# threshold (128 KiB) and are recycled from the heap; bigger ones are mapped fresh and page-faulted in on
# every operation, which made whole-image painting several times slower.
_BAND_PIXELS = 12288


# ----------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class FaceIdentity:
    """What stays fixed across all images of one person.

    Lengths are in normalized image units (the image spans [-1, 1] on both axes, y pointing down) and
    refer to the frontal, unscaled face; colours are RGB in [0, 1] as displayed.
    """

    face_center_y: float
    face_half_width: float
    face_half_height: float
    jaw_taper: float  # 0: oval, 0.3: narrow, pointed chin
    skin_rgb: RGB
    blush: float  # cheek redness, 0..1
    freckles: float  # 0: none
    moles: tuple[Mole, ...]
    eye_y: float
    eye_spacing: float  # half the distance between the eye centres
    eye_half_width: float
    eye_half_height: float
    eye_tilt: float  # canthal tilt: > 0 raises the outer corners
    iris_rgb: RGB
    iris_size: float  # iris radius / eye half-width
    brow_gap: float  # brow height above the eye centre
    brow_thickness: float
    brow_arch: float
    brow_length: float  # brow half-length / eye half-width
    brow_slant: float  # > 0 raises the outer ends
    brow_rgb: RGB
    nose_tip_y: float
    nose_width: float  # relative to an average nose
    nose_bridge: float  # relief of the bridge, relative
    mouth_y: float
    mouth_half_width: float
    upper_lip: float  # thickness
    lower_lip: float
    cupid_bow: float  # 0..1
    lip_rgb: RGB
    ear_size: float
    neck_half_width: float
    hair_style: int  # index into HAIR_STYLES
    hair_rgb: RGB
    hair_volume: float
    hairline: float  # hairline height relative to the face centre (negative: above)
    hair_length: float  # lowest point of long / curly hair
    hair_part: float  # s coordinate of the parting
    beard: float  # 0: clean-shaven, 1: full beard
    backdrop_rgb: RGB  # this person's typical backdrop, perturbed per image
    shirt_rgb: RGB
    texture_seed: int  # seeds the skin / hair / brow noise lattices


@dataclass(frozen=True)
class FaceVariation:
    """What changes from one image of a person to the next (pose, light, expression, background)."""

    yaw: float  # radians, > 0 turns the face towards image right
    pitch: float  # radians, > 0 tilts the face down
    roll: float  # radians, in-plane, about the neck
    shift_x: float
    shift_y: float
    scale: float
    light_dir: tuple[float, float, float]  # unit vector towards the light, camera frame (y down, z to viewer)
    light_intensity: float
    ambient: float
    light_tint: RGB
    smile: float  # 0..1
    mouth_open: float  # opening height in normalized units
    eye_openness: float  # 1: relaxed
    brow_raise: float  # -1..1
    gaze: tuple[float, float]  # iris offset, fraction of the eye half-size
    background_top_rgb: RGB
    background_bottom_rgb: RGB
    backdrop_seed: int  # seeds the soft background blotches


# ----------------------------------------------------------------------------------------------- sampling
class _Draw:
    """Exact draws from a seeded PCG64 stream: only ``random()`` / ``integers()``, which are bit-identical on
    every platform (``normal`` and friends go through libm)."""

    def __init__(self, entropy: list[int]):
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(self.rng.random())

    def chance(self, p: float) -> bool:
        return float(self.rng.random()) < p

    def integer(self, high: int) -> int:
        return int(self.rng.integers(0, high))

    def seed(self) -> int:
        return int(self.rng.integers(0, 2**32))


def _check_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DataError(f"synthetic faces: {name}={value!r} is invalid; allowed: an integer >= 0")
    return int(value)


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) not in SIZES:
        raise DataError(
            f"synthetic faces: size={size!r} is not supported; allowed: a power of two from 16 to 512 "
            f"({', '.join(map(str, SIZES))})"
        )
    return int(size)


def _mix(a: RGB, b: RGB, w: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w)


def _scale(c: RGB, k: float) -> RGB:
    return (c[0] * k, c[1] * k, c[2] * k)


def _ramp(anchors: tuple[RGB, ...], x: float) -> RGB:
    """Piecewise-linear colour ramp through evenly spaced anchors, x in [0, 1]."""
    position = min(max(x, 0.0), 1.0) * (len(anchors) - 1)
    index = min(int(position), len(anchors) - 2)
    return _mix(anchors[index], anchors[index + 1], position - index)


_SKIN = ((0.97, 0.80, 0.70), (0.92, 0.71, 0.57), (0.80, 0.57, 0.41), (0.58, 0.38, 0.25), (0.34, 0.21, 0.14))
_HAIR = (
    (0.92, 0.83, 0.62),  # platinum
    (0.80, 0.63, 0.37),  # blond
    (0.55, 0.38, 0.22),  # light brown
    (0.33, 0.21, 0.13),  # brown
    (0.18, 0.12, 0.08),  # dark brown
    (0.07, 0.06, 0.06),  # black
)
_EYES = (
    (0.22, 0.12, 0.06),  # dark brown
    (0.40, 0.23, 0.10),  # brown
    (0.45, 0.38, 0.18),  # hazel
    (0.30, 0.44, 0.28),  # green
    (0.30, 0.46, 0.64),  # blue
    (0.46, 0.52, 0.57),  # grey
)
_LIPSTICK = ((0.62, 0.10, 0.14), (0.80, 0.36, 0.44), (0.45, 0.12, 0.20), (0.74, 0.40, 0.34))


def _muted_colour(draw: _Draw, saturation: float, low: float, high: float) -> RGB:
    grey = draw.uniform(low, high)
    colour = (draw.uniform(low, high), draw.uniform(low, high), draw.uniform(low, high))
    return _mix((grey, grey, grey), colour, saturation)


def sample_identity(seed: int, identity: int) -> FaceIdentity:
    """The parameters of person ``identity`` in the population seeded by ``seed`` (both integers >= 0)."""
    return _sample_identity(_check_index("seed", seed), _check_index("identity", identity))


@functools.lru_cache(maxsize=256)  # a data set renders each person several times in a row
def _sample_identity(seed: int, identity: int) -> FaceIdentity:
    draw = _Draw([_IDENTITY_STREAM, seed, identity])

    tone = draw.uniform(0.0, 1.0)
    undertone = draw.uniform(-1.0, 1.0)  # < 0 pink, > 0 golden
    skin = _ramp(_SKIN, tone)
    skin = (skin[0] + 0.02 * max(-undertone, 0.0), skin[1] + 0.02 * undertone, skin[2] - 0.03 * undertone)

    style = draw.integer(len(HAIR_STYLES))
    darkness = 1.0 - (1.0 - draw.uniform(0.0, 1.0)) ** 2 if tone < 0.45 else draw.uniform(0.75, 1.0)
    hair = _ramp(_HAIR, darkness)  # mostly dark; fair hair only with fair skin
    if draw.chance(0.08):
        hair = _mix((0.62, 0.28, 0.12), (0.42, 0.16, 0.07), draw.uniform(0.0, 1.0))  # auburn / ginger
    elif draw.chance(0.08):
        hair = _scale((0.64, 0.63, 0.62), draw.uniform(0.7, 1.2))  # grey
    hair = _scale(hair, draw.uniform(0.85, 1.15))
    brow = _mix(_scale(hair, 0.7), (0.10, 0.08, 0.07), 0.5)

    # light skin: any eye colour, mostly brown; darker skin: dark to mid brown
    eye_colour = draw.uniform(0.0, 1.0)
    iris = _ramp(_EYES, eye_colour if tone < 0.35 and eye_colour > 0.5 else eye_colour * 0.25)

    lips = (skin[0] * 0.86 + 0.05, skin[1] * 0.58, skin[2] * 0.60 + 0.02)
    lips = _mix(lips, (0.70, 0.32, 0.34), draw.uniform(0.0, 0.35) * (1.0 - tone))
    if draw.chance(0.12):
        lips = _mix(lips, _LIPSTICK[draw.integer(len(_LIPSTICK))], draw.uniform(0.5, 0.85))

    face_center_y = draw.uniform(-0.02, 0.04)
    eye_y = draw.uniform(-0.08, -0.03)
    nose_tip_y = eye_y + draw.uniform(0.22, 0.29)
    mouth_y = nose_tip_y + draw.uniform(0.13, 0.18)
    face_half_width = draw.uniform(0.42, 0.5)
    face_half_height = max(draw.uniform(0.60, 0.70), mouth_y - face_center_y + 0.24)

    moles = tuple(
        (draw.uniform(-0.35, 0.35), draw.uniform(-0.3, 0.5), draw.uniform(0.006, 0.012))
        for _ in range(draw.integer(4) if draw.chance(0.5) else 0)
    )
    return FaceIdentity(
        face_center_y=face_center_y,
        face_half_width=face_half_width,
        face_half_height=face_half_height,
        jaw_taper=draw.uniform(0.08, 0.35),
        skin_rgb=skin,
        blush=draw.uniform(0.0, 1.0),
        freckles=draw.uniform(0.3, 1.0) if draw.chance(0.15) and tone < 0.5 else 0.0,
        moles=moles,
        eye_y=eye_y,
        eye_spacing=draw.uniform(0.19, 0.235),
        eye_half_width=draw.uniform(0.085, 0.1),
        eye_half_height=draw.uniform(0.032, 0.045),
        eye_tilt=draw.uniform(-0.12, 0.2),
        iris_rgb=iris,
        iris_size=draw.uniform(0.40, 0.50),
        brow_gap=draw.uniform(0.085, 0.12),
        brow_thickness=draw.uniform(0.015, 0.03),
        brow_arch=draw.uniform(0.0, 0.035),
        brow_length=draw.uniform(1.05, 1.35),
        brow_slant=draw.uniform(-0.03, 0.04),
        brow_rgb=brow,
        nose_tip_y=nose_tip_y,
        nose_width=draw.uniform(0.8, 1.3),
        nose_bridge=draw.uniform(0.6, 1.3),
        mouth_y=mouth_y,
        mouth_half_width=draw.uniform(0.13, 0.175),
        upper_lip=draw.uniform(0.017, 0.03),
        lower_lip=draw.uniform(0.024, 0.04),
        cupid_bow=draw.uniform(0.2, 1.0),
        lip_rgb=lips,
        ear_size=draw.uniform(0.85, 1.15),
        neck_half_width=draw.uniform(0.2, 0.26),
        hair_style=style,
        hair_rgb=hair,
        hair_volume=draw.uniform(0.02, 0.12),
        hairline=draw.uniform(-0.50, -0.38),
        hair_length=draw.uniform(0.7, 1.3),
        hair_part=draw.uniform(-0.3, 0.3),
        beard=draw.uniform(0.2, 1.0) if draw.chance(0.35) and HAIR_STYLES[style] not in ("long", "fringe") else 0.0,
        backdrop_rgb=_muted_colour(draw, draw.uniform(0.2, 0.8), 0.15, 0.9),
        shirt_rgb=_muted_colour(draw, draw.uniform(0.3, 1.0), 0.05, 0.85),
        texture_seed=draw.seed(),
    )


def sample_variation(seed: int, identity: int, image: int) -> FaceVariation:
    """The pose, light, expression and background of image ``image`` of person ``identity``."""
    seed, identity = _check_index("seed", seed), _check_index("identity", identity)
    draw = _Draw([_VARIATION_STREAM, seed, identity, _check_index("image", image)])
    backdrop = _sample_identity(seed, identity).backdrop_rgb

    lx, ly, lz = draw.uniform(-0.55, 0.55), draw.uniform(-0.6, -0.1), 1.0
    norm = float(np.sqrt(lx * lx + ly * ly + lz * lz))
    smile = draw.uniform(0.0, 1.0)
    # the person's usual backdrop, partly mixed with another colour, darker or lighter towards the bottom
    top = _mix(backdrop, _muted_colour(draw, 0.6, 0.1, 0.95), draw.uniform(0.1, 0.3))
    bottom = _scale(_mix(top, _muted_colour(draw, 0.5, 0.1, 0.9), draw.uniform(0.0, 0.2)), draw.uniform(0.8, 1.05))
    return FaceVariation(
        yaw=draw.uniform(-0.06, 0.06),
        pitch=draw.uniform(-0.04, 0.04),
        roll=draw.uniform(-0.05, 0.05),
        shift_x=draw.uniform(-0.015, 0.015),
        shift_y=draw.uniform(-0.015, 0.015),
        scale=draw.uniform(0.975, 1.025),
        light_dir=(lx / norm, ly / norm, lz / norm),
        light_intensity=draw.uniform(0.9, 1.08),
        ambient=draw.uniform(0.28, 0.4),
        light_tint=(1.0 + draw.uniform(-0.05, 0.05), 1.0, 1.0 + draw.uniform(-0.05, 0.05)),
        smile=smile,
        mouth_open=draw.uniform(0.0, 0.025) * smile if draw.chance(0.4) else 0.0,
        eye_openness=draw.uniform(0.72, 1.08),
        brow_raise=draw.uniform(-0.6, 1.0),
        gaze=(draw.uniform(-0.3, 0.3), draw.uniform(-0.2, 0.2)),
        background_top_rgb=top,
        background_bottom_rgb=bottom,
        backdrop_seed=draw.seed(),
    )


# ----------------------------------------------------------------------------------------------- math
def _sin_cos(angle: float) -> tuple[float, float]:
    """sin and cos of a small angle (|angle| < 1) by Taylor series: plain IEEE arithmetic, unlike libm."""
    sin, cos, term_s, term_c, a2 = 0.0, 0.0, angle, 1.0, angle * angle
    for k in range(1, 13):
        sin += term_s
        cos += term_c
        term_s *= -a2 / ((2 * k) * (2 * k + 1))
        term_c *= -a2 / ((2 * k - 1) * (2 * k))
    return sin, cos


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.asarray((x - edge0) * (1.0 / (edge1 - edge0)))
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 1.0, out=t)
    return t * t * (3.0 - 2.0 * t)


def _bump(x: np.ndarray) -> np.ndarray:
    """Compact smooth bump (1 - x^2)^2 on |x| < 1, 0 outside."""
    r = np.maximum(1.0 - x * x, 0.0)
    return r * r


def _ellipse_sdf(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to the ellipse x^2/a^2 + y^2/b^2 = 1 (exact on the boundary's normal)."""
    q = (x * (1.0 / a)) ** 2 + (y * (1.0 / b)) ** 2
    q2 = (x * (1.0 / (a * a))) ** 2 + (y * (1.0 / (b * b))) ** 2
    return (np.sqrt(q) - 1.0) * np.sqrt((q + 1e-12) / (q2 + 1e-12 / (a * b)))


def _fade(edge0: float, edge1: float, x: float) -> float:
    """Scalar smoothstep."""
    t = min(max((x - edge0) / (edge1 - edge0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Lattice:
    """Value noise: uniform random values on a wrapped square lattice, interpolated smoothly (C1)."""

    def __init__(self, draw: _Draw, side: int = _TEXTURE_LATTICE):
        self.side = n = side
        values = draw.rng.random((n, n)) - 0.5
        # one wrapped extra row and column: a cell's corners are then flat indices i, i+1, i+n+1, i+n+2
        flat = np.concatenate([values, values[:, :1]], axis=1)
        flat = np.concatenate([flat, flat[:1]], axis=0).ravel()
        self.corners = (flat, flat[1:], flat[n + 1:], flat[n + 2:])

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        n = self.side
        u0, v0 = np.floor(u), np.floor(v)
        fu, fv = u - u0, v - v0
        index = (v0.astype(np.int64) & (n - 1)) * (n + 1)
        index += u0.astype(np.int64) & (n - 1)
        fu = fu * fu * (3.0 - 2.0 * fu)
        fv = fv * fv * (3.0 - 2.0 * fv)
        a, b, c, d = (corner[index] for corner in self.corners)
        b -= a
        b *= fu
        a += b  # the top edge
        d -= c
        d *= fu
        c += d  # the bottom edge
        c -= a
        c *= fv
        a += c
        return a

    def fbm(self, u: np.ndarray, v: np.ndarray, frequency: float, octaves: int, pixel: float,
            stretch: float = 1.0, ridged: bool = False, gain: float = 0.5) -> np.ndarray:
        """Fractal sum of ``octaves`` octaves (frequency doubling, amplitude times ``gain``), in about
        [-0.5, 0.5].

        ``frequency`` is in cycles per unit of v and ``stretch`` times that along u (u, v, ``pixel`` in the
        same units). Octaves whose cells shrink towards 2 pixels fade out: a small render is the band-limited
        version of a large one instead of an aliased one. Each octave's lattice is turned by its own angle so
        that no grid directions show. ``ridged``: 0.25 - |noise| per octave (creases, curls).
        """
        total: np.ndarray | float = 0.0
        amplitude, norm = 1.0, 0.0
        for octave in range(octaves):
            f = frequency * 2.0**octave
            weight = 1.0 - _fade(0.2, 0.45, f * max(stretch, 1.0) * pixel)
            norm += amplitude
            if weight > 0.0:
                sin, cos = _OCTAVE_TURNS[octave]
                su, sv = u * (f * stretch), v * f
                noise = self(cos * su - sin * sv + 17.3 * octave, sin * su + cos * sv + 41.9 * octave)
                if ridged:
                    noise = 0.25 - np.abs(noise)
                total = total + (amplitude * weight) * noise
            amplitude *= gain
        if isinstance(total, float):
            return np.zeros(np.broadcast_shapes(np.shape(u), np.shape(v)))
        return total * (1.0 / norm)


_OCTAVE_TURNS = tuple(_sin_cos(0.5 + 1.1 * octave) for octave in range(8))


@dataclass(frozen=True)
class _Textures:
    skin: _Lattice
    hair: _Lattice
    detail: _Lattice


@functools.lru_cache(maxsize=32)
def _textures(texture_seed: int) -> _Textures:
    draw = _Draw([_TEXTURE_STREAM, texture_seed])
    return _Textures(_Lattice(draw), _Lattice(draw), _Lattice(draw))


# ----------------------------------------------------------------------------------------------- canvas
Window = tuple[slice, slice]
# Colours are painted channel by channel on 2-D planes: numpy runs the same work several times faster on
# three H x W arrays than on one H x W x 3 array (whose innermost loop would be 3 long).
Planes = list[np.ndarray]
Colour = Sequence[float | np.ndarray]  # per channel: a number or a field


def _blend(planes: Planes, alpha: np.ndarray, colour: Colour) -> None:
    """Alpha-composite ``colour`` (per channel: a number or a field) over ``planes``, in place."""
    for plane, value in zip(planes, colour):
        plane += alpha * (value - plane)


def _darken(planes: Planes, factor: np.ndarray, strength: RGB = (1.0, 1.0, 1.0)) -> None:
    """Multiply the planes by 1 - strength * factor, in place."""
    for plane, k in zip(planes, strength):
        if k:
            plane *= 1.0 - k * factor


def _empty(window: Window) -> bool:
    return window[0].stop <= window[0].start or window[1].stop <= window[1].start


class _Canvas:
    """A band of rows [first_row, stop_row) of the image being painted (float RGB planes), its pixel grid
    and the head's coordinate frames on it.

    Head frame (hx, hy): the image with framing and roll undone. Face frame (s, t): the head frame with yaw
    and pitch undone on the head's ellipsoid, so that features drawn frontally in (s, t) turn with the head.
    """

    def __init__(self, size: int, identity: FaceIdentity, variation: FaceVariation, first_row: int,
                 stop_row: int):
        self.size, self.first_row, self.stop_row = size, first_row, stop_row
        self.pixel = 2.0 / size
        centres = (np.arange(size, dtype=np.float64) + 0.5) * self.pixel - 1.0
        self.x, self.y = centres[None, :], centres[first_row:stop_row, None]
        self.planes: Planes = [np.empty((stop_row - first_row, size)) for _ in range(3)]

        v = variation
        self.sin_roll, self.cos_roll = _sin_cos(v.roll)
        self.sin_yaw, self.cos_yaw = _sin_cos(v.yaw)
        self.sin_pitch, self.cos_pitch = _sin_cos(v.pitch)
        self.scale, self.shift = v.scale, (v.shift_x, v.shift_y)
        self.head_pixel = self.pixel / v.scale
        px, py = _ROLL_PIVOT
        dx = (self.x - v.shift_x - px) * (1.0 / v.scale)
        dy = (self.y - v.shift_y - py) * (1.0 / v.scale)
        self.hx = self.cos_roll * dx + self.sin_roll * dy + px
        self.hy = -self.sin_roll * dx + self.cos_roll * dy + py

        a, b, cy = identity.face_half_width, identity.face_half_height, identity.face_center_y
        self.depth = 0.85 * a
        q = (self.hx * (1.0 / a)) ** 2 + ((self.hy - cy) * (1.0 / b)) ** 2
        z = self.depth * np.sqrt(np.maximum(1.0 - q, 0.0))
        self.s = (self.hx - self.sin_yaw * z) * (1.0 / self.cos_yaw)
        self.t = (self.hy - self.sin_pitch * z) * (1.0 / self.cos_pitch)

    def window(self, s0: float, s1: float, t0: float, t1: float) -> Window:
        """Pixel rows / columns that can show the face-frame box [s0, s1] x [t0, t1]."""
        # the head-frame box that can show it (yaw / pitch move points by up to depth * sin) ...
        reach = self.depth * max(abs(self.sin_yaw), abs(self.sin_pitch)) + 0.01
        hx0, hx1 = min(s0 * self.cos_yaw, s0) - reach, max(s1 * self.cos_yaw, s1) + reach
        hy0, hy1 = min(t0 * self.cos_pitch, t0) - reach, max(t1 * self.cos_pitch, t1) + reach
        # ... and the image box around it after roll, scale and shift
        px, py = _ROLL_PIVOT
        cx, cy = ((hx0 + hx1) * 0.5 - px) * self.scale, ((hy0 + hy1) * 0.5 - py) * self.scale
        hw, hh = (hx1 - hx0) * 0.5 * self.scale, (hy1 - hy0) * 0.5 * self.scale
        x = self.cos_roll * cx - self.sin_roll * cy + px + self.shift[0]
        y = self.sin_roll * cx + self.cos_roll * cy + py + self.shift[1]
        reach_x = abs(self.cos_roll) * hw + abs(self.sin_roll) * hh
        reach_y = abs(self.sin_roll) * hw + abs(self.cos_roll) * hh
        return (self._pixels(y - reach_y, y + reach_y, self.first_row, self.stop_row),
                self._pixels(x - reach_x, x + reach_x, 0, self.size))

    def _pixels(self, low: float, high: float, first: int, stop: int) -> slice:
        """Pixels [first, stop) whose centres lie in [low, high] or next to it, relative to ``first``."""
        start = math.floor((low + 1.0) / self.pixel - 0.5) - 1
        end = math.ceil((high + 1.0) / self.pixel - 0.5) + 2
        start, end = min(max(start, first), stop), min(max(end, first), stop)
        return slice(start - first, max(end, start) - first)

    def cover(self, sdf: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage of the region sdf < 0 (head-frame distances), ramping over ~one pixel."""
        return _smoothstep(0.6 * self.head_pixel, -0.6 * self.head_pixel, sdf)

    def over(self, window: Window, alpha: np.ndarray, colour: Colour) -> None:
        """Alpha-composite ``colour`` over the image inside ``window``."""
        _blend([plane[window] for plane in self.planes], alpha, colour)

    def to_uint8(self) -> np.ndarray:
        return np.stack([np.floor(np.clip(plane, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                         for plane in self.planes], axis=-1)


@functools.lru_cache(maxsize=8)
def _backdrop_blotches(backdrop_seed: int) -> np.ndarray:
    """Soft blotches of the backdrop: low-frequency noise on a fixed grid of nodes over the image."""
    nodes = np.linspace(-1.0, 1.0, _COARSE_NODES)
    lattice = _Lattice(_Draw([_BACKDROP_STREAM, backdrop_seed]), _BACKDROP_LATTICE)
    blotches = lattice.fbm(nodes[None, :], nodes[:, None], 1.2, 2, 0.0)
    blotches.flags.writeable = False
    return blotches


def _coarse_field(values: np.ndarray, canvas: _Canvas) -> np.ndarray:
    """A smooth field given on the grid of nodes over the image, interpolated bilinearly to the pixels
    (much cheaper than evaluating it per pixel; the same field at every size)."""

    def cell(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        position = (centres + 1.0) * ((_COARSE_NODES - 1) * 0.5)  # in node units
        index = np.minimum(np.floor(position).astype(np.int64), _COARSE_NODES - 2)
        return index, position - index

    col, col_weight = cell(canvas.x[0])
    row, row_weight = cell(canvas.y[:, 0])
    rows = values[row] + (values[row + 1] - values[row]) * row_weight[:, None]
    return rows[:, col] + (rows[:, col + 1] - rows[:, col]) * col_weight[None, :]


class _Patch:
    """The face-frame (or head-frame) coordinates of one canvas window, and windows of sub-boxes in it."""

    def __init__(self, canvas: _Canvas, s0: float, s1: float, t0: float, t1: float, frame: str = "face"):
        self.canvas = canvas
        self.window = canvas.window(s0, s1, t0, t1)
        source_s, source_t = (canvas.s, canvas.t) if frame == "face" else (canvas.hx, canvas.hy)
        self.s, self.t = source_s[self.window], source_t[self.window]

    def part(self, s0: float, s1: float, t0: float, t1: float) -> Window:
        """The sub-window of face-frame box [s0, s1] x [t0, t1], relative to this patch."""
        rows, cols = self.canvas.window(s0, s1, t0, t1)
        own_rows, own_cols = self.window

        def relative(inner: slice, outer: slice) -> slice:
            start = min(max(inner.start - outer.start, 0), outer.stop - outer.start)
            return slice(start, max(min(inner.stop - outer.start, outer.stop - outer.start), start))

        return relative(rows, own_rows), relative(cols, own_cols)


def _shade(normal_x: np.ndarray, normal_y: np.ndarray, light: tuple[float, float, float],
           wrap: float) -> np.ndarray:
    """Wrapped-Lambert term of a surface with normal along (normal_x, normal_y, 1)."""
    inverse_length = 1.0 / np.sqrt(normal_x * normal_x + normal_y * normal_y + 1.0)
    cosine = (normal_x * light[0] + normal_y * light[1] + light[2]) * inverse_length
    return np.clip((cosine + wrap) * (1.0 / (1.0 + wrap)), 0.0, 1.0)


def _light_level(shading: np.ndarray, variation: FaceVariation) -> np.ndarray:
    """Ambient + directional light; a fully lit surface gets ``light_intensity``."""
    return (variation.ambient + (1.0 - variation.ambient) * shading) * variation.light_intensity


def _lit(albedo: Colour, light: np.ndarray, variation: FaceVariation) -> Planes:
    """Albedo under a light level (see :func:`_light_level`) of the variation's tint."""
    return [value * (light * tint) for value, tint in zip(albedo, variation.light_tint)]


def _face_light(canvas: _Canvas, v: FaceVariation) -> tuple[float, float, float]:
    """The light direction in the face frame: turned by -yaw, then -pitch."""
    lx, ly, lz = v.light_dir
    lx, lz = canvas.cos_yaw * lx - canvas.sin_yaw * lz, canvas.sin_yaw * lx + canvas.cos_yaw * lz
    ly, lz = canvas.cos_pitch * ly - canvas.sin_pitch * lz, canvas.sin_pitch * ly + canvas.cos_pitch * lz
    return lx, ly, lz


def _jaw_factor(ident: FaceIdentity, t: np.ndarray | float) -> np.ndarray:
    """Width factor of the face outline at height t: 1 down to the cheekbones, narrowing to the chin."""
    below = (np.asarray(t) - ident.face_center_y) * (1.0 / ident.face_half_height)
    return 1.0 - ident.jaw_taper * _smoothstep(-0.1, 1.0, below)


# ----------------------------------------------------------------------------------------------- painters
def _paint_background(canvas: _Canvas, variation: FaceVariation) -> None:
    top, bottom = variation.background_top_rgb, variation.background_bottom_rgb
    blotches = _coarse_field(_backdrop_blotches(variation.backdrop_seed), canvas)
    gradient = _smoothstep(-1.3, 1.3, canvas.y + 0.3 * canvas.x)
    light = 1.0 - 0.18 * (canvas.x * canvas.x + canvas.y * canvas.y) + 0.2 * blotches
    for plane, low, high in zip(canvas.planes, top, bottom):
        np.multiply(low + (high - low) * gradient, light, out=plane)


class _HairVolume:
    """The hair mass as an ellipsoid around the skull: its shading normals and strand texture."""

    def __init__(self, ident: FaceIdentity, tex: _Textures):
        style = HAIR_STYLES[ident.hair_style]
        volume = 0.0 if style == "buzz" else ident.hair_volume
        self.ident, self.tex, self.style = ident, tex, style
        self.half_width = ident.face_half_width * 1.07 + volume
        self.half_height = ident.face_half_height * 0.93 + volume
        self.centre_t = ident.face_center_y - 0.1
        # strands fan out from a crown above the head, falling almost straight at the sides
        self.crown = (ident.hair_part, self.centre_t - self.half_height - 0.45)

    def colour(self, s: np.ndarray, t: np.ndarray, pixel: float, variation: FaceVariation,
               darken: np.ndarray | float = 1.0) -> Planes:
        nx = s * (1.0 / self.half_width)
        ny = (t - self.centre_t) * (1.0 / self.half_height)
        nz = np.sqrt(np.maximum(1.0 - nx * nx - ny * ny, 0.1))  # no grazing normals: no bright rims
        light = variation.light_dir
        shading = _shade(nx / nz, ny / nz, light, 0.35) * darken
        if self.style == "curly":
            strands = self.tex.hair.fbm(s, t, 12.0, 4, pixel, ridged=True, gain=0.65) * 1.8
        else:  # strands flow away from the crown: fine across the flow, long along it
            ds, dt = s - self.crown[0], t - self.crown[1]
            radius = np.sqrt(ds * ds + dt * dt) + 1e-3
            strands = self.tex.hair.fbm(ds * (1.0 / radius), radius, 3.0, 5, pixel, stretch=14.0, gain=0.75) * 1.7
        diffuse = (1.0 + strands) * _light_level(shading, variation)
        # anisotropic sheen: a bright band across the top of the volume, broken up by the strands
        band = _bump((ny + 0.5 + 0.25 * light[1]) * (1.0 / 0.22)) * np.maximum(1.0 - np.abs(nx), 0.0)
        sheen = (0.3 * variation.light_intensity) * band * np.clip(0.5 + 2.0 * strands, 0.0, 1.5) * darken
        return [(base * tint) * diffuse + (base * 0.5 + 0.22) * sheen
                for base, tint in zip(self.ident.hair_rgb, variation.light_tint)]


def _paint_back_hair(canvas: _Canvas, ident: FaceIdentity, variation: FaceVariation, hair: _HairVolume) -> None:
    """Hair behind the head and neck: long hair falling to the shoulders, or a curly halo."""
    a, cy = ident.face_half_width, ident.face_center_y
    if hair.style == "long":
        top, bottom = hair.centre_t - hair.half_height, ident.hair_length
        reach = hair.half_width + 0.04 + 0.12 * max(bottom - hair.centre_t, 0.0)
        patch = _Patch(canvas, -reach - 0.05, reach + 0.05, top - 0.05, bottom + 0.08, frame="head")
        s, t = patch.s, patch.t
        # the cap continued by falls on both sides, flaring slightly towards their uneven ends
        width = hair.half_width + 0.03 + 0.12 * np.maximum(t - hair.centre_t, 0.0)
        ends = bottom + 0.06 * hair.tex.hair.fbm(s, t * 0.0, 10.0, 2, canvas.head_pixel)
        falls = np.maximum(np.maximum(np.abs(s) - width, t - ends), hair.centre_t - t)
        sdf = np.minimum(falls, _ellipse_sdf(s, t - hair.centre_t, hair.half_width + 0.03, hair.half_height + 0.02))
    elif hair.style == "curly":
        radius = a * 1.45 + ident.hair_volume
        centre = cy - 0.18
        patch = _Patch(canvas, -radius - 0.1, radius + 0.1, centre - radius - 0.1,
                       min(centre + radius, ident.hair_length) + 0.1, frame="head")
        s, t = patch.s, patch.t
        sdf = _ellipse_sdf(s, t - centre, radius, radius * 0.95)
        sdf = np.maximum(sdf + 0.07 * hair.tex.hair.fbm(s, t, 7.0, 2, canvas.head_pixel), t - ident.hair_length)
    else:
        return
    if _empty(patch.window):
        return
    # behind the head the hair is in its own shadow
    behind = 0.6 + 0.4 * _smoothstep(ident.neck_half_width, a, np.abs(s))
    canvas.over(patch.window, canvas.cover(sdf), hair.colour(s, t, canvas.head_pixel, variation, behind))


def _paint_body(canvas: _Canvas, ident: FaceIdentity, variation: FaceVariation) -> None:
    """Neck, chest and a shirt, in the head frame."""
    neck_w, neck_top = ident.neck_half_width, ident.face_center_y + 0.2
    chin = ident.face_center_y + ident.face_half_height
    patch = _Patch(canvas, -1.6, 1.6, neck_top, 1.6, frame="head")
    if _empty(patch.window):
        return
    s, t = patch.s, patch.t
    neck = np.maximum(np.abs(s) - neck_w - 0.3 * _smoothstep(0.75, 1.15, t), neck_top - t)
    chest = _ellipse_sdf(s, t - 1.55, 1.25, 0.74)
    across = np.clip(s * (1.0 / neck_w), -1.5, 1.5)
    shading = _shade(across * 1.2, 0.0 * across, variation.light_dir, 0.4)
    jaw_shadow = 1.0 - 0.5 * _smoothstep(chin + 0.14, chin - 0.05, t)  # the jaw shades the neck below it
    light = _light_level(shading, variation) * (0.88 * jaw_shadow)
    canvas.over(patch.window, canvas.cover(np.minimum(neck, chest)), _lit(ident.skin_rgb, light, variation))

    shoulders = _ellipse_sdf(s, t - 1.55, 1.27, 0.76)
    neckline = _ellipse_sdf(s, t - 0.86, neck_w + 0.06, 0.14)
    folds = 0.6 + 0.25 * variation.light_dir[0] * np.clip(s, -1.0, 1.0) - 0.25 * _smoothstep(0.6, 1.1, np.abs(s))
    light = folds * (variation.ambient + 0.8 * variation.light_intensity)
    canvas.over(patch.window, canvas.cover(np.maximum(shoulders, -neckline)), _lit(ident.shirt_rgb, light, variation))


def _paint_ears(canvas: _Canvas, ident: FaceIdentity, variation: FaceVariation) -> None:
    a, b, cy = ident.face_half_width, ident.face_half_height, ident.face_center_y
    ear_t = (ident.eye_y + ident.nose_tip_y) * 0.5
    half_h, half_w = 0.12 * ident.ear_size, 0.055 * ident.ear_size
    rel = (ear_t - cy) / b
    edge = a * float(np.sqrt(max(1.0 - rel * rel, 0.0))) * float(_jaw_factor(ident, ear_t))
    skin = (ident.skin_rgb[0], ident.skin_rgb[1] * 0.93, ident.skin_rgb[2] * 0.92)  # ears are a little redder
    for side in (-1.0, 1.0):
        centre_s = side * (edge - 0.005)
        patch = _Patch(canvas, centre_s - half_w - 0.03, centre_s + half_w + 0.03, ear_t - half_h - 0.02,
                       ear_t + half_h + 0.02)
        if _empty(patch.window):
            continue
        s, t = (patch.s - centre_s) * side, patch.t - ear_t  # s > 0 points away from the face
        s = s + 0.15 * t  # the top of the ear leans outwards
        sdf = _ellipse_sdf(s, t, half_w, half_h)
        inner = _smoothstep(0.0, -0.02, _ellipse_sdf(s + 0.008, t + 0.01, half_w * 0.55, half_h * 0.65))
        shading = _shade(side * (s * 5.0 + 0.4), t * 2.0, variation.light_dir, 0.5)
        light = _light_level(shading, variation) * (0.95 - 0.3 * inner)
        canvas.over(patch.window, canvas.cover(sdf), _lit(skin, light, variation))


class _Relief:
    """The face's height field above its base ellipsoid, accumulated as value and gradient on a patch."""

    def __init__(self, patch: _Patch):
        self.patch = patch
        shape = patch.s.shape
        self.height, self.grad_s, self.grad_t = np.zeros(shape), np.zeros(shape), np.zeros(shape)

    def add(self, centre_s: float, centre_t: float, radius_s: float, radius_t: float, amplitude: float) -> None:
        """Add amplitude * (1 - q)^3 on q = ((s - cs)/rs)^2 + ((t - ct)/rt)^2 < 1 (C2: no Mach bands)."""
        part = self.patch.part(centre_s - radius_s, centre_s + radius_s, centre_t - radius_t, centre_t + radius_t)
        if _empty(part):
            return
        us = (self.patch.s[part] - centre_s) * (1.0 / radius_s)
        ut = (self.patch.t[part] - centre_t) * (1.0 / radius_t)
        rest = np.maximum(1.0 - us * us - ut * ut, 0.0)
        rest2 = rest * rest
        self.height[part] += amplitude * rest2 * rest
        slope = (-6.0 * amplitude) * rest2
        self.grad_s[part] += slope * us * (1.0 / radius_s)
        self.grad_t[part] += slope * ut * (1.0 / radius_t)


def _sculpt(relief: _Relief, ident: FaceIdentity, v: FaceVariation, nose_shift: float) -> None:
    """The facial relief: sockets, brow ridge, cheekbones, nose, lips, chin (amplitudes in image units)."""
    a, b, cy = ident.face_half_width, ident.face_half_height, ident.face_center_y
    ex, ey, ew, eh = ident.eye_spacing, ident.eye_y, ident.eye_half_width, ident.eye_half_height
    nose_w, tip, smile = ident.nose_width, ident.nose_tip_y, v.smile
    relief.add(0.0, cy - 0.45, 0.45, 0.3, 0.03)  # forehead
    for side in (-1.0, 1.0):
        relief.add(side * ex, ey + 0.005, ew * 1.7, eh * 2.8, -0.04)  # eye socket
        relief.add(side * ex * 1.05, ey - ident.brow_gap + 0.01, ew * 1.6, 0.05, 0.02)  # brow ridge
        relief.add(side * (ex + 0.05), tip - 0.05 - 0.025 * smile, 0.17, 0.13, 0.015 + 0.012 * smile)  # cheek
        relief.add(side * (a * 0.93), ey - 0.12, 0.12, 0.16, -0.03)  # temple
        relief.add(side * 0.05 * nose_w + nose_shift, tip + 0.002, 0.032 * nose_w, 0.03, 0.018)  # nostril wing
        relief.add(side * (ident.mouth_half_width + 0.025), ident.mouth_y - 0.01 * smile, 0.05, 0.07,
                   -0.005 - 0.007 * smile)  # corner of the mouth / smile fold
    bridge_top = ey - 0.03
    relief.add(nose_shift * 0.6, (bridge_top + tip) * 0.5, 0.06 * nose_w, (tip - bridge_top) * 0.55,
               0.025 * ident.nose_bridge)
    relief.add(nose_shift, tip - 0.02, 0.05 * nose_w, 0.045, 0.022)  # tip
    relief.add(nose_shift * 0.5, tip + 0.045, 0.07 * nose_w, 0.025, -0.012)  # under the nose
    relief.add(0.0, ident.mouth_y - ident.upper_lip * 0.6, ident.mouth_half_width * 0.95, 0.025, 0.008)
    relief.add(0.0, ident.mouth_y + ident.lower_lip * 0.6, ident.mouth_half_width * 0.85, 0.032, 0.012)
    relief.add(0.0, ident.mouth_y + ident.lower_lip + 0.035, ident.mouth_half_width * 0.7, 0.025, -0.008)
    chin_t = cy + b * 0.85
    relief.add(0.0, chin_t, 0.11 * float(_jaw_factor(ident, chin_t)) + 0.03, 0.08, 0.02)


def _paint_face(canvas: _Canvas, ident: FaceIdentity, v: FaceVariation, tex: _Textures) -> None:
    a, b, cy = ident.face_half_width, ident.face_half_height, ident.face_center_y
    patch = _Patch(canvas, -a - 0.02, a + 0.02, cy - b - 0.02, cy + b + 0.02)
    if _empty(patch.window):
        return
    s, t, pixel = patch.s, patch.t, canvas.head_pixel

    # silhouette: an ellipse narrowing towards the chin; base surface: the ellipsoid z = depth * sqrt(1 - q),
    # whose gradient starts the relief
    jaw = _jaw_factor(ident, t)
    s_round = s * (1.0 / jaw)
    alpha = canvas.cover(_ellipse_sdf(s_round, t - cy, a, b))
    q = (s_round * (1.0 / a)) ** 2 + ((t - cy) * (1.0 / b)) ** 2
    dz_dq = (-0.5 * canvas.depth) / np.sqrt(np.maximum(1.0 - q, 1e-2))
    relief = _Relief(patch)
    relief.grad_s += dz_dq * (2.0 / (a * a)) * s_round / jaw
    relief.grad_t += dz_dq * (2.0 / (b * b)) * (t - cy)
    nose_shift = canvas.sin_yaw * 0.05  # the nose stands out of the ellipsoid, so it swings further with yaw
    _sculpt(relief, ident, v, nose_shift)

    # albedo: skin with mottling and pores, blush, freckles, moles, beard; then the features painted on it
    ex, ey, ew, eh = ident.eye_spacing, ident.eye_y, ident.eye_half_width, ident.eye_half_height
    nose_w, tip = ident.nose_width, ident.nose_tip_y
    mottle = tex.skin.fbm(s, t, 6.0, 3, pixel)
    pores = tex.detail.fbm(s, t, 90.0, 2, pixel)
    tone = 1.0 + 0.07 * mottle + 0.1 * pores
    albedo = [value * tone for value in ident.skin_rgb]
    albedo[0] += 0.03 * mottle
    cheeks = _bump(np.sqrt(((np.abs(s) - ex - 0.02) * (1.0 / 0.24)) ** 2 + ((t - tip + 0.02) * (1.0 / 0.18)) ** 2))
    _darken(albedo, (0.05 * ident.blush + 0.02) * cheeks, (0.0, 0.5, 0.4))
    if ident.freckles > 0.0:
        spots = np.clip((tex.detail.fbm(s + 3.1, t, 45.0, 2, pixel) - 0.1) * 8.0, 0.0, 1.0)
        zone = _bump(np.sqrt((s * (1.0 / 0.4)) ** 2 + ((t - tip + 0.05) * (1.0 / 0.18)) ** 2))
        _darken(albedo, (0.4 * ident.freckles) * spots * zone, (0.35, 0.55, 0.7))
    for mole_s, mole_t, mole_r in ident.moles:
        part = patch.part(mole_s - mole_r, mole_s + mole_r, mole_t - mole_r, mole_t + mole_r)
        if _empty(part):
            continue
        mole = canvas.cover(np.sqrt((s[part] - mole_s) ** 2 + (t[part] - mole_t) ** 2) - mole_r)
        _blend([plane[part] for plane in albedo], 0.8 * mole, _scale(ident.skin_rgb, 0.4))

    def paint(painter: Callable[..., object], box: tuple[float, float, float, float], *args: object,
              shift: float = 0.0) -> tuple[Window, object] | None:
        """``painter(s, t, albedo, *args)`` on the part of the face that shows the box (s0, s1, t0, t1),
        moved by ``shift`` along s."""
        part = patch.part(box[0] + shift, box[1] + shift, box[2], box[3])
        if _empty(part):
            return None
        return part, painter(s[part] - shift, t[part], [plane[part] for plane in albedo], *args)

    if ident.beard > 0.0:
        paint(_paint_beard, (-a, a, tip - 0.3, cy + b), ident, tex, pixel)
    half_mouth = ident.mouth_half_width * 1.15 + 0.01
    paint(_paint_mouth, (-half_mouth, half_mouth, ident.mouth_y - 0.07, ident.mouth_y + 0.07), canvas, ident, v)
    paint(_paint_nostrils, (-0.07 * nose_w, 0.07 * nose_w, tip - 0.01, tip + 0.05), canvas, ident, shift=nose_shift)
    catch_lights = []
    for side in (-1.0, 1.0):
        half_brow, brow_s, brow_t = ew * ident.brow_length + 0.02, side * (ex + 0.01), ey - ident.brow_gap
        paint(_paint_brow, (brow_s - half_brow, brow_s + half_brow, brow_t - 0.08, brow_t + 0.05),
              canvas, ident, v, side, tex)
        eye = paint(_paint_eye, (side * ex - ew * 1.2, side * ex + ew * 1.2, ey - eh * 2.0 - 0.03,
                                 ey + eh * 1.5 + 0.02), canvas, ident, v, side, tex)
        if eye is not None:
            catch_lights.append(eye)

    # light on the relief (in the face frame: the light turns the other way with the head), darker in the
    # hollows, a little warmer where it falls off (light scattered under the skin)
    light = _face_light(canvas, v)
    nx, ny = -relief.grad_s, -relief.grad_t
    shading = _shade(nx, ny, light, 0.35)
    level = _light_level(shading, v) * (1.0 + 3.5 * np.minimum(relief.height, 0.0))
    falloff = 0.12 * (1.0 - shading)
    # skin sheen: Blinn-Phong with exponent 32 by repeated squaring
    hx, hy, hz = light[0], light[1], light[2] + 1.0
    cosine = (nx * hx + ny * hy + hz) * ((1.0 / float(np.sqrt(hx * hx + hy * hy + hz * hz)))
                                         / np.sqrt(nx * nx + ny * ny + 1.0))
    sheen = np.maximum(cosine, 0.0)
    for _ in range(5):
        sheen = sheen * sheen
    sheen *= 0.09 * v.light_intensity * (1.0 + 2.0 * pores)
    colour = [value * (level * tint) * (1.0 + warmth * falloff) + sheen
              for value, tint, warmth in zip(albedo, v.light_tint, (0.25, -0.1, -0.25))]
    for part, catch_light in catch_lights:
        _blend([plane[part] for plane in colour], 0.9 * catch_light, (1.0, 1.0, 1.0))
    canvas.over(patch.window, alpha, colour)


def _paint_beard(s: np.ndarray, t: np.ndarray, albedo: Planes, ident: FaceIdentity, tex: _Textures,
                 pixel: float) -> None:
    """Stubble to full beard: along the jaw below a line from the sideburns to the mouth corners, plus a
    moustache on fuller beards; the lips stay clear."""
    half_mouth, mouth_y = ident.mouth_half_width, ident.mouth_y
    u = np.abs(s) * (1.0 / ident.face_half_width)
    top = ident.nose_tip_y - 0.02
    cheek_line = mouth_y - (mouth_y - top) * _smoothstep(half_mouth / ident.face_half_width, 0.95, u)
    ragged = 0.025 * tex.hair.fbm(s, t, 12.0, 2, pixel)
    edge = max(0.025, pixel)
    zone = _smoothstep(-edge, edge, t - cheek_line + ragged)
    above_lip = mouth_y - ident.upper_lip - 0.02
    moustache = _bump(np.sqrt((s * (1.0 / (half_mouth + 0.02))) ** 2 + ((t - above_lip) * (1.0 / 0.035)) ** 2))
    moustache = np.minimum(moustache * 2.5, 1.0) * _fade(0.3, 0.6, ident.beard)
    zone = np.maximum(zone, moustache)
    lips = _bump(np.sqrt((s * (1.0 / (half_mouth + 0.01))) ** 2
                         + ((t - mouth_y - 0.004) * (1.0 / (ident.lower_lip + 0.012))) ** 2))
    zone *= 1.0 - np.minimum(lips * 3.0, 1.0)
    stubble = np.clip(tex.hair.fbm(s, t, 25.0, 3, pixel, stretch=3.0) * 3.0 + 0.5, 0.0, 1.0)  # hairs grow down
    density = zone * (0.25 + 0.65 * ident.beard) * (0.6 + 0.4 * stubble)
    _blend(albedo, density, _scale(ident.hair_rgb, 0.7))


def _paint_mouth(s: np.ndarray, t: np.ndarray, albedo: Planes, canvas: _Canvas, ident: FaceIdentity,
                 v: FaceVariation) -> None:
    half = ident.mouth_half_width * (1.0 + 0.12 * v.smile)
    u = s * (1.0 / half)
    across = np.maximum(1.0 - u * u, 0.0)
    line = ident.mouth_y - (0.035 * v.smile - 0.006) * (u * u)  # where the lips meet: corners lift with a smile
    opening = v.mouth_open * across
    # cupid's bow: two peaks either side of a central dip on the upper lip's edge
    bow = ident.cupid_bow * (_bump((np.abs(s) - 0.035) * (1.0 / 0.035)) - 0.5 * _bump(s * (1.0 / 0.02)))
    thickness = np.sqrt(across)
    upper_edge = line - opening * 0.5 - ident.upper_lip * thickness * (1.0 + 0.35 * bow)
    lower_edge = line + opening * 0.5 + ident.lower_lip * thickness * (1.0 - 0.3 * v.smile)
    lips = canvas.cover(np.maximum(np.maximum(upper_edge - t, t - lower_edge), np.abs(s) - half))
    shade = 0.86 + 0.16 * _smoothstep(-0.004, 0.004, t - line)  # the upper lip faces down and is darker
    _blend(albedo, 0.92 * lips, [value * shade for value in ident.lip_rgb])

    if v.mouth_open > 0.0:  # teeth at the top of the opening, the dark mouth below
        inside = canvas.cover(np.maximum(np.abs(t - line) - opening * 0.5, np.abs(s) - half * 0.95))
        teeth = _smoothstep(0.45, 0.15, (t - line + opening * 0.5) * (1.0 / v.mouth_open)) * across
        _blend(albedo, inside, [dark + light * teeth for dark, light in zip((0.22, 0.07, 0.07), (0.6, 0.6, 0.55))])
    # the dark line where the lips meet, deepest at the corners
    corner = _bump((np.abs(u) - 1.0) * 4.0)
    strength = 0.7 * _smoothstep(1.1, 0.6, np.abs(u)) + 0.35 * corner
    line_alpha = canvas.cover(np.abs(t - line) - (0.003 + opening * 0.5)) * strength
    _blend(albedo, line_alpha, _scale(ident.lip_rgb, 0.25))


def _paint_nostrils(s: np.ndarray, t: np.ndarray, albedo: Planes, canvas: _Canvas, ident: FaceIdentity) -> None:
    tip, nose_w = ident.nose_tip_y, ident.nose_width
    for side in (-1.0, 1.0):
        ds = s - side * 0.027 * nose_w
        dt = t - (tip + 0.02)
        tilted = ds + 0.5 * dt * side
        nostril = canvas.cover(_ellipse_sdf(tilted, dt, 0.014 * nose_w, 0.0065))
        soft = _bump(np.sqrt((tilted * (1.0 / (0.028 * nose_w))) ** 2 + (dt * (1.0 / 0.015)) ** 2))
        _darken(albedo, 0.5 * nostril + 0.2 * soft)


def _paint_brow(s: np.ndarray, t: np.ndarray, albedo: Planes, canvas: _Canvas, ident: FaceIdentity,
                v: FaceVariation, side: float, tex: _Textures) -> None:
    half_len = ident.eye_half_width * ident.brow_length
    u = (s - side * (ident.eye_spacing + 0.01)) * side * (1.0 / half_len)  # -1 inner end, +1 outer end
    arch = ident.brow_arch * (1.0 + 0.4 * v.brow_raise) * (1.0 - (u - 0.25) ** 2)
    raised = 0.025 * v.brow_raise * (1.0 - 0.3 * u)
    centre = ident.eye_y - ident.brow_gap - raised - arch - ident.brow_slant * u
    thickness = ident.brow_thickness * (1.0 - 0.8 * _smoothstep(-0.6, 1.0, u))  # tapering to the tail
    sdf = np.maximum(np.abs(t - centre) - thickness * 0.5, (np.abs(u) - 1.0) * half_len)
    edge = max(0.004, 0.6 * canvas.head_pixel)
    # hairs: fine noise stretched along the (slanted) growth direction; faded in at the inner end
    along = u * half_len
    hairs = tex.hair.fbm(along, (t - centre) + 0.35 * along, 90.0, 2, canvas.head_pixel, stretch=0.15)
    density = (_smoothstep(edge, -edge, sdf) * np.clip(0.9 + 2.5 * hairs, 0.0, 1.0)
               * _smoothstep(-1.0, -0.6, u))
    _blend(albedo, 0.9 * density, ident.brow_rgb)


def _paint_eye(s: np.ndarray, t: np.ndarray, albedo: Planes, canvas: _Canvas, ident: FaceIdentity,
               v: FaceVariation, side: float, tex: _Textures) -> np.ndarray:
    """Paint one eye into ``albedo``; return the catch-light's coverage (added after shading)."""
    ex, ey, ew, eh = ident.eye_spacing, ident.eye_y, ident.eye_half_width, ident.eye_half_height
    ds = (s - side * ex) * side  # > 0 towards the outer corner
    dt = t - ey + ident.eye_tilt * ds  # the corners follow the canthal tilt
    u = ds * (1.0 / ew)
    lid_span = np.maximum(1.0 - u * u, 0.0)
    openness = v.eye_openness * (1.0 - 0.2 * v.smile)
    upper = -eh * openness * lid_span * (1.0 - 0.2 * u)
    lower = eh * (0.62 - 0.15 * v.smile) * lid_span * (1.0 + 0.1 * u)
    opening = canvas.cover(np.maximum(np.maximum(upper - dt, dt - lower), np.abs(ds) - ew))

    # eyeball: sclera darker and pinker towards the corners, shadowed under the upper lid
    lid_shadow = 1.0 - 0.4 * _smoothstep(eh * 0.6, 0.0, dt - upper)
    corners = _smoothstep(0.4, 1.0, np.abs(u))
    white = (1.0 - 0.25 * corners) * lid_shadow
    eye = [0.92 * white, (0.89 - 0.04 * corners) * white, (0.87 - 0.04 * corners) * white]
    radius = ident.iris_size * ew
    gaze_s, gaze_t = v.gaze[0] * ew * 0.3 * side, v.gaze[1] * eh * 0.3
    is_, it = ds - gaze_s, dt - gaze_t
    r = np.sqrt(is_ * is_ + it * it)
    rel = r * (1.0 / radius)
    streaks = tex.detail.fbm(is_ * (3.0 / (r + 1e-3)), rel, 2.0, 3, canvas.head_pixel / radius, stretch=3.0)
    limbus = _smoothstep(0.7, 1.0, rel)
    iris = (1.0 + 0.7 * streaks) * (1.0 - 0.6 * limbus) * lid_shadow * (1.0 + 0.3 * _smoothstep(0.6, 0.35, rel))
    _blend(eye, canvas.cover(r - radius), [value * iris for value in ident.iris_rgb])
    _blend(eye, canvas.cover(r - radius * 0.38), (0.03, 0.025, 0.025))  # pupil
    _blend(albedo, opening, eye)

    # lash line along the upper lid, heavier towards the outer corner; a faint lower lid; the lid crease
    lash_w = 0.005 + 0.005 * _smoothstep(-0.5, 1.0, u)
    along = _smoothstep(1.12, 0.95, np.abs(u + 0.02))
    lash = canvas.cover(np.abs(dt - upper + lash_w * 0.4) - lash_w) * along
    _blend(albedo, 0.92 * lash, (0.05, 0.035, 0.035))
    lower_line = canvas.cover(np.abs(dt - lower - 0.0015) - 0.0015) * along
    _blend(albedo, 0.35 * lower_line, _scale(ident.skin_rgb, 0.45))
    crease_t = -(eh + 0.013) * np.maximum(1.0 - (u * 0.9) ** 2, 0.0)
    crease = canvas.cover(np.abs(dt - crease_t) - 0.002) * _smoothstep(1.0, 0.6, np.abs(u))
    _darken(albedo, 0.25 * crease)

    # catch-light: a small reflection of the light, offset towards it
    lx, ly, _ = v.light_dir
    hs, ht = is_ - (lx * 0.45 + 0.1) * radius * side, it - (ly * 0.45 - 0.1) * radius
    return canvas.cover(np.sqrt(hs * hs + ht * ht) - radius * 0.17) * opening


def _paint_front_hair(canvas: _Canvas, ident: FaceIdentity, variation: FaceVariation, hair: _HairVolume) -> None:
    """The hair over the skull and forehead, down to the hairline (and over the face's sides if long)."""
    style = hair.style
    a, cy = ident.face_half_width, ident.face_center_y
    bottom = cy + (0.45 if style == "long" else 0.05)
    patch = _Patch(canvas, -hair.half_width - 0.06, hair.half_width + 0.06,
                   hair.centre_t - hair.half_height - 0.06, bottom + 0.06)
    if _empty(patch.window):
        return
    s, t, pixel = patch.s, patch.t, canvas.head_pixel

    cap = _ellipse_sdf(s, t - hair.centre_t, hair.half_width, hair.half_height)
    cap = cap + (0.05 if style == "curly" else 0.015) * hair.tex.hair.fbm(s, t, 8.0, 2, pixel)  # uneven outline
    # hairline: hair where t < line(s); a rounded forehead, down to the temples, then up above the ears
    u = np.abs(s) * (1.0 / a)
    hairline, temple = cy + ident.hairline, ident.eye_y + 0.01
    if style == "fringe":
        hairline, temple = ident.eye_y - ident.brow_gap - 0.04, ident.eye_y + 0.03
    elif style == "buzz":
        hairline = cy + ident.hairline - 0.04
    arch = np.clip((u - 0.15) * (1.0 / 0.85), 0.0, 1.0)
    line = hairline + (temple - hairline) * (arch * arch) - 0.8 * np.maximum(u - 0.97, 0.0)
    if style == "side_part":  # hair swept from the parting across the forehead
        sweep = (s - ident.hair_part) * (1.0 if ident.hair_part < 0 else -1.0)
        line = line + 0.1 * _smoothstep(0.0, 0.5, sweep) * (1.0 - _smoothstep(0.75, 0.95, u))
    elif style == "long":  # curtains over the sides of the face
        line = line + (cy + 0.45 - temple) * _smoothstep(0.8, 0.98, u)
    jag = hair.tex.hair.fbm(s * 0.5, t * 0.0, 14.0, 3, pixel) * (0.09 if style in ("fringe", "curly") else 0.035)
    edge = t - line - jag
    feather = max(0.008, pixel)
    # over long or curly hair the cap's rim blends into the hair behind it
    rim = max(0.012, 0.6 * pixel) if style in ("long", "curly") else 0.6 * pixel
    alpha = _smoothstep(rim, -rim, cap) * _smoothstep(feather, -feather, edge)
    if style == "buzz":
        alpha *= 0.5 + 0.3 * np.clip(hair.tex.hair.fbm(s, t, 80.0, 2, pixel) * 4.0, -1.0, 1.0)
    elif style == "long":
        alpha *= _smoothstep(bottom + 0.04, bottom - 0.04, t)

    if style != "buzz":  # the hair shades the forehead just below it
        shadow = _smoothstep(0.05, 0.0, edge) * (1.0 - alpha) * canvas.cover(cap + 0.01)
        _darken([plane[patch.window] for plane in canvas.planes], 0.22 * shadow)
    canvas.over(patch.window, alpha, hair.colour(s, t, pixel, variation))


# ----------------------------------------------------------------------------------------------- public API
def render_face(identity: FaceIdentity, variation: FaceVariation, size: int,
                _band_pixels: int = _BAND_PIXELS) -> np.ndarray:
    """Render one face: a ``size`` x ``size`` x 3 uint8 RGB array (size: a power of two from 16 to 512)."""
    size = _check_size(size)
    tex = _textures(identity.texture_seed)
    hair = _HairVolume(identity, tex)
    image = np.empty((size, size, 3), dtype=np.uint8)
    band = max(1, _band_pixels // size)
    for first_row in range(0, size, band):  # every pixel is computed on its own: bands change no value
        canvas = _Canvas(size, identity, variation, first_row, min(first_row + band, size))
        _paint_background(canvas, variation)
        _paint_back_hair(canvas, identity, variation, hair)
        _paint_body(canvas, identity, variation)
        if hair.style != "long":  # long hair covers the ears
            _paint_ears(canvas, identity, variation)
        _paint_face(canvas, identity, variation, tex)
        _paint_front_hair(canvas, identity, variation, hair)
        image[canvas.first_row:canvas.stop_row] = canvas.to_uint8()
    return image


def render(seed: int, identity: int, image: int, size: int) -> np.ndarray:
    """Render image ``image`` of person ``identity`` in the population ``seed`` (see :func:`render_face`)."""
    size = _check_size(size)
    return render_face(sample_identity(seed, identity), sample_variation(seed, identity, image), size)


def contact_sheet(seed: int, identities: int, images: int, size: int) -> np.ndarray:
    """A grid of renders for inspection: one row per identity 0..identities-1, one column per image."""
    for name, count in (("identities", identities), ("images", images)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise DataError(f"synthetic faces: contact sheet {name}={count!r} is invalid; allowed: an integer >= 1")
    rows = [np.concatenate([render(seed, i, j, size) for j in range(images)], axis=1) for i in range(identities)]
    return np.concatenate(rows, axis=0)
