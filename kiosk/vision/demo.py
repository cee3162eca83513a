"""A synthetic scene for teaching without a camera.

A few visually distinct objects (a red disc, a blue square, a green triangle,
a yellow star), each with its own surface texture, drift, turn and breathe
over a textured table top. The light changes slowly and every frame gets
sensor-like noise, so no two frames are the same, yet each object stays easy
to tell apart: MobileNet embeddings separate them well, which is what a demo of
"teach a class in a minute" needs.

Only numpy and OpenCV; drawing one 640x480 frame takes about a millisecond.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["OBJECT_NAMES", "DemoScene"]

OBJECT_NAMES = ("red disc", "blue square", "green triangle", "yellow star")

# Sprites are drawn once at this size and scaled per frame.
_SPRITE = 256
_NOISE_PAD = 29  # a prime, so successive frame offsets rarely repeat


class DemoScene:
    """Draws the demo scene at a given time with a given object (or none).

    Attributes:
        width, height: frame size in pixels.
        object_names: the objects that can be shown, in order.
    """

    def __init__(self, width: int = 640, height: int = 480, seed: int = 0) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"demo frames must be at least 16x16, got {width}x{height}")
        self.width = width
        self.height = height
        self.object_names = OBJECT_NAMES
        rng = np.random.default_rng(seed)
        # Room around the visible frame so the "camera" can sway over the table.
        self._margin = max(8, min(width, height) // 12)
        self._background = _table_top(height + 2 * self._margin, width + 2 * self._margin, rng)
        self._sprites = [_sprite(name, rng) for name in OBJECT_NAMES]
        # One noise field a little larger than the frame; each frame takes a
        # window at its own offset, so the noise changes without a big bank.
        pad = _NOISE_PAD
        noise = rng.normal(0.0, 5.0, size=(height + pad, width + pad, 3)).astype(np.float32)
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        # The object's size follows the shorter side, so it fills the same share
        # of the centred square crop the model sees, whatever the frame shape.
        self._object_size = 0.45 * min(width, height)

    def render(self, t: float, obj: int | None, noise_index: int = 0) -> np.ndarray:
        """The scene at time ``t`` seconds with object ``obj`` (an index, or None for none).

        ``noise_index`` picks the sensor noise (use the frame number).

        Returns:
            (height, width, 3) uint8 RGB, a new array.
        """
        m = self._margin
        # Slow camera sway: the whole view moves a little, like a hand-held phone.
        dx = round(m + 0.8 * m * math.sin(0.21 * t))
        dy = round(m + 0.8 * m * math.sin(0.17 * t + 1.0))
        frame = self._background[dy : dy + self.height, dx : dx + self.width].copy()
        if obj is not None:
            self._draw_object(frame, t, obj)
        # Light: brightness and colour temperature drift over several seconds.
        gain = 1.0 + 0.12 * math.sin(2 * math.pi * t / 7.0)
        warm = 0.04 * math.sin(2 * math.pi * t / 11.0)
        levels = np.arange(256, dtype=np.float32)
        lut = np.stack(
            [levels * gain * (1 + warm), levels * gain, levels * gain * (1 - warm)], axis=-1
        )
        lut = np.clip(lut, 0, 255).astype(np.uint8).reshape(1, 256, 3)
        frame = cv2.LUT(frame, lut)
        oy, ox = (noise_index * 7) % _NOISE_PAD, (noise_index * 13) % _NOISE_PAD
        window = (slice(oy, oy + self.height), slice(ox, ox + self.width))
        cv2.add(frame, self._noise_up[window], dst=frame)
        cv2.subtract(frame, self._noise_down[window], dst=frame)
        return frame

    def _draw_object(self, frame: np.ndarray, t: float, obj: int) -> None:
        """Blend sprite ``obj`` with its shadow into ``frame`` in place."""
        color, alpha, shadow = self._sprites[obj]
        phase = 1.7 * obj
        scale = self._object_size / _SPRITE * (1.0 + 0.12 * math.sin(0.5 * t + phase))
        angle = 25.0 * math.sin(0.3 * t + phase)
        # Lissajous drift inside the centred square, so the model always sees it whole.
        reach = 0.16 * min(self.width, self.height)
        cx = self.width / 2 + reach * math.sin(0.37 * t + phase)
        cy = self.height / 2 + 0.8 * reach * math.sin(0.29 * t + 2 * phase)
        side = math.ceil(_SPRITE * scale * 1.45) + 2
        x0, y0 = int(cx) - side // 2, int(cy) - side // 2
        matrix = np.asarray(
            cv2.getRotationMatrix2D((_SPRITE / 2, _SPRITE / 2), angle, scale), np.float64
        )
        matrix[:, 2] += (side / 2 - _SPRITE / 2, side / 2 - _SPRITE / 2)
        size = (side, side)
        warped = cv2.warpAffine(color, matrix, size, flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)
        # The shadow falls down-right of the object, as from a lamp up-left.
        offset = 0.05 * side
        matrix[:, 2] += (offset, offset)
        s = cv2.warpAffine(shadow, matrix, size, flags=cv2.INTER_LINEAR)
        # Clip the sprite box to the frame.
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + side, self.width), min(y0 + side, self.height)
        if fx1 <= fx0 or fy1 <= fy0:
            return
        sx0, sy0 = fx0 - x0, fy0 - y0
        sx1, sy1 = sx0 + (fx1 - fx0), sy0 + (fy1 - fy0)
        roi = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        a = a[sy0:sy1, sx0:sx1, None]
        s = s[sy0:sy1, sx0:sx1, None]
        roi *= 1.0 - 0.45 * s
        roi = roi * (1.0 - a) + warped[sy0:sy1, sx0:sx1] * a
        frame[fy0:fy1, fx0:fx1] = np.clip(roi, 0, 255).astype(np.uint8)


def _smooth_noise(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(height, width) float32 in about [-1, 1]: noise with features ~1/cells of the width."""
    small = rng.uniform(-1, 1, size=(max(2, cells * height // width), cells)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _table_top(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A muted wood-grain table: (height, width, 3) uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    warp = 18.0 * _smooth_noise(height, width, 5, rng)
    grain = np.sin((y + warp) / 5.5 + 0.8 * _smooth_noise(height, width, 9, rng))
    blotches = _smooth_noise(height, width, 7, rng)
    fine = rng.normal(0, 1, size=(height, width)).astype(np.float32)
    shade = 1.0 + 0.08 * grain + 0.1 * blotches + 0.03 * fine
    # A soft vignette, as a real lens has.
    r2 = ((x - width / 2) / width) ** 2 + ((y - height / 2) / height) ** 2
    shade *= 1.0 - 0.5 * r2
    base = np.array([150, 128, 104], np.float32)  # light oak
    image = base * shade[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _sprite(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(color (S, S, 3) float32 RGB, alpha (S, S) float32, shadow (S, S) float32)."""
    s = _SPRITE
    mask = np.zeros((s, s), np.uint8)
    color = np.zeros((s, s, 3), np.float32)
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    c = s / 2
    r = 0.42 * s
    if name == "red disc":
        cv2.circle(mask, (int(c), int(c)), int(r), 255, -1, cv2.LINE_AA)
        rings = 0.5 + 0.5 * np.cos(np.hypot(x - c, y - c) / 7.0)
        color[:] = (205, 35, 30)
        color *= (0.75 + 0.25 * rings)[..., None]
        # A bright highlight, as on a glossy plastic lid.
        glow = np.exp(-(((x - 0.38 * s) ** 2 + (y - 0.36 * s) ** 2) / (2 * (0.09 * s) ** 2)))
        color += 90 * glow[..., None]
    elif name == "blue square":
        corner = int(c - 0.8 * r), int(c + 0.8 * r)
        cv2.rectangle(mask, (corner[0], corner[0]), (corner[1], corner[1]), 255, -1)
        checker = ((x // 24 + y // 24) % 2).astype(np.float32)
        color[:] = (30, 70, 200)
        color += (checker * 55)[..., None] * np.array([1.0, 1.0, 0.3], np.float32)
        lines = ((x % 24 < 2) | (y % 24 < 2)).astype(np.float32)
        color = color * (1 - lines[..., None]) + 235 * lines[..., None]
    elif name == "green triangle":
        top = (int(c), int(c - r))
        points = np.array(
            [top, (int(c - 0.95 * r), int(c + 0.72 * r)), (int(c + 0.95 * r), int(c + 0.72 * r))],
            np.int32,
        )
        cv2.fillPoly(mask, [points], 255, cv2.LINE_AA)
        stripes = (((x + y) // 14) % 2).astype(np.float32)
        color[:] = (40, 170, 60)
        color += (stripes * -70)[..., None] * np.array([0.3, 1.0, 0.4], np.float32)
    elif name == "yellow star":
        angles = np.arange(10) * math.pi / 5 - math.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        points = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], -1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 255, cv2.LINE_AA)
        color[:] = (240, 205, 30)
        # Orange dots scattered over the surface.
        for px, py in rng.uniform(0.1 * s, 0.9 * s, size=(40, 2)):
            cv2.circle(color, (int(px), int(py)), 6, (235, 120, 20), -1, cv2.LINE_AA)
    else:  # pragma: no cover - OBJECT_NAMES is fixed
        raise ValueError(name)
    # Surface grain so the object never looks flat.
    color += rng.normal(0, 6, size=(s, s, 1)).astype(np.float32)
    color = np.clip(color, 0, 255)
    alpha = mask.astype(np.float32) / 255.0
    shadow = cv2.GaussianBlur(alpha, (0, 0), sigmaX=0.04 * s)
    return color, alpha, shadow
