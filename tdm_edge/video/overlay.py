"""Drawing on the frame: the top-k labels (jetson-inference's layout: white on grey, top left), a status line
(FPS and per-stage milliseconds, bottom left) and, with ``--show-tokens``, the token map.

The token map is drawn where the model looked: the centre crop that preprocessing takes, mapped back into the
frame. Every patch is tinted by what happened to it (kept: untinted, matched: orange, clustered: one colour per
cluster, EViT's fused token: magenta), and thin dark lines separate patches that ended up in different tokens, so
merged tokens show as regions. The frame shows the last stage; small panels beside it show each stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..runners.preprocess import crop_box, to_rgb_uint8
from .cvutil import cv2
from .tokens import CLUSTERED, FUSED, KEPT, MATCHED, StageMap

TEXT = (255, 255, 255)
BACKGROUND = (102, 102, 102)  # jetson-inference's Gray40
MATCH_COLOUR = (0, 165, 255)
FUSED_COLOUR = (200, 0, 200)
TINT_ALPHA = 0.35  # the picture stays visible under a tint
EDGE = (30, 30, 30)
PAD = 5


def to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any frame (grayscale, BGRA, 16-bit) -> a ``[H, W, 3]`` uint8 BGR image that can be drawn on (a new array)."""
    if frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3:
        return frame.copy()
    return np.ascontiguousarray(to_rgb_uint8(frame, "BGR")[:, :, ::-1])


MIN_SCALE = 0.45  # OpenCV's simplex font at 0.45: ~10 px capitals, the smallest that reads at 448 px


def font_scale(height: int) -> float:
    """Text size for a frame ``height`` pixels high: 0.7 at 720 p (jetson-inference's look), never below
    :data:`MIN_SCALE`. Labels, legend, captions and status all use it, so they grow and shrink together."""
    return max(MIN_SCALE, 0.7 * height / 720)


def thickness_for(scale: float) -> int:
    return max(1, round(2 * scale))


def wrap(words: Sequence[str], width: int, scale: float, sep: str = "  ") -> list[str]:
    """``words`` joined by ``sep`` into lines no wider than ``width`` pixels at ``scale``; a word is never cut
    (a single word wider than ``width`` gets a line of its own)."""
    c = cv2()
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]}{sep}{word}" if lines else word
        if lines and c.getTextSize(candidate, c.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def label_boxes(texts: Sequence[str], height: int) -> list[tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` of each label's background box, top left, one line each (as jetson-inference)."""
    c = cv2()
    scale = font_scale(height)
    thickness = thickness_for(scale)
    boxes, y = [], PAD
    for text in texts:
        (w, h), base = c.getTextSize(text, c.FONT_HERSHEY_SIMPLEX, scale, thickness)
        boxes.append((PAD, y, PAD + w + 2 * PAD, y + h + base + 2 * PAD))
        y += h + base + 2 * PAD + PAD
    return boxes


def draw_text_boxes(image: np.ndarray, texts: Sequence[str], boxes: Sequence[tuple[int, int, int, int]]) -> None:
    c = cv2()
    scale = font_scale(image.shape[0])
    thickness = thickness_for(scale)
    for text, (x0, y0, x1, y1) in zip(texts, boxes):
        c.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), BACKGROUND, -1)
        _, base = c.getTextSize(text, c.FONT_HERSHEY_SIMPLEX, scale, thickness)
        c.putText(image, text, (x0 + PAD, y1 - PAD - base), c.FONT_HERSHEY_SIMPLEX, scale, TEXT, thickness,
                  c.LINE_AA)


def seen_region(height: int, width: int, prep: dict) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of a ``height x width`` frame that preprocessing's centre crop keeps."""
    _, out_h, out_w = prep["input_size"]
    rh, rw, top, left = crop_box(height, width, prep)
    sy, sx = height / rh, width / rw
    return (round(max(0, left) * sx), round(max(0, top) * sy), round(min(rw, left + out_w) * sx),
            round(min(rh, top + out_h) * sy))


def cluster_colours(count: int) -> np.ndarray:
    """``[count, 3]`` BGR colours with well separated hues (golden-ratio steps), bright enough to tint."""
    hues = (np.arange(count) * 0.618034 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], -1)[None]
    return cv2().cvtColor(hsv, cv2().COLOR_HSV2BGR)[0].astype(np.float32)


def patch_colours(stage: StageMap) -> tuple[np.ndarray, np.ndarray]:
    """``([P, 3] BGR tint, [P] alpha)`` of every patch for one stage."""
    colour = np.zeros((len(stage.state), 3), np.float32)
    alpha = np.where(stage.state == KEPT, 0.0, TINT_ALPHA).astype(np.float32)  # [P]
    colour[stage.state == MATCHED] = MATCH_COLOUR
    colour[stage.state == FUSED] = FUSED_COLOUR
    clustered = stage.state == CLUSTERED
    if clustered.any():
        colour[clustered] = cluster_colours(int(stage.cluster.max()) + 1)[stage.cluster[clustered]]
    return colour, alpha


def tint(image: np.ndarray, stage: StageMap, grid: tuple[int, int]) -> None:
    """Tint ``image`` (the seen region, in place) patch by patch and outline the tokens of ``stage``."""
    c = cv2()
    h, w = image.shape[:2]
    gh, gw = grid
    colour, alpha = patch_colours(stage)
    colour_img = c.resize(colour.reshape(gh, gw, 3).astype(np.uint8), (w, h), interpolation=c.INTER_NEAREST)
    mask = c.resize((alpha > 0).reshape(gh, gw).astype(np.uint8), (w, h), interpolation=c.INTER_NEAREST)
    blended = c.addWeighted(image, 1.0 - TINT_ALPHA, colour_img, TINT_ALPHA, 0.0)
    c.copyTo(blended, mask, image)
    image[token_edges(stage.owner.reshape(gh, gw), h, w)] = EDGE


def token_edges(owner: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[height, width]`` bool: the first pixel row/column of a cell whose token differs from its neighbour's above
    or to the left, for a ``[gh, gw]`` grid of token ids stretched over the image (cell edges rounded as
    ``linspace(0, size, cells + 1)``)."""
    gh, gw = owner.shape
    ys = np.linspace(0, height, gh + 1).round().astype(int)  # cell edges in pixels
    xs = np.linspace(0, width, gw + 1).round().astype(int)
    left = np.zeros((gh, gw), bool)
    left[:, 1:] = owner[:, 1:] != owner[:, :-1]  # [gh, gw]: a different token to the left
    above = np.zeros((gh, gw), bool)
    above[1:, :] = owner[1:, :] != owner[:-1, :]  # [gh, gw]: a different token above
    first_col = np.zeros(width, bool)
    first_col[xs[:-1]] = True  # [width]
    first_row = np.zeros(height, bool)
    first_row[ys[:-1]] = True  # [height]
    row_counts, col_counts = np.diff(ys), np.diff(xs)
    stretch = lambda m: m.repeat(row_counts, axis=0).repeat(col_counts, axis=1)  # noqa: E731  [height, width]
    return (stretch(left) & first_col[None, :]) | (stretch(above) & first_row[:, None])


def panel_places(height: int, width: int, x1: int, count: int, bottom: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """``(side, [(x, y), ...])`` of ``count`` square stage panels: a column right of the seen region (which ends
    at ``x1``) when there are 64 pixels there, else a row at the bottom right above the ``bottom`` pixels the
    status takes. A place with a negative coordinate does not fit (the caller stops there)."""
    right = width - x1 - 2 * PAD  # room right of the seen region
    if right >= 64:
        side = min(right, (height - PAD) // count - PAD)
        return side, [(width - side - PAD, PAD + i * (side + PAD)) for i in range(count)]
    side = max(48, min(height // 4, (width - PAD) // count - PAD))
    return side, [(width - (count - i) * (side + PAD), height - bottom - side - PAD) for i in range(count)]


def layout_height(layout: tuple[list[str], float, int, int] | None) -> int:
    """Pixels a status layout (:meth:`Overlay.status_layout`) takes at the bottom of the frame (0 for none)."""
    if layout is None:
        return 0
    lines, _, step, _ = layout
    return len(lines) * step + 2 * PAD


class Overlay:
    """Draws one frame's results.

    Args:
        labels: class names (``meta["labels"]``) or ``None`` (then ``class N``).
        prep: ``meta["preprocessing"]``, to place the token map where the model looked.
        grid: the patch grid (rows, columns), e.g. (14, 14).
    """

    def __init__(self, labels: Sequence[str] | None, prep: dict, grid: tuple[int, int]) -> None:
        self.labels = labels
        self.prep = prep
        self.grid = grid

    def label(self, cls: int) -> str:
        return self.labels[cls] if self.labels and cls < len(self.labels) else f"class {cls}"

    def texts(self, top: Sequence[tuple[int, float]]) -> list[str]:
        """``80.11% label`` per prediction (imagenet.py's order; no zero padding: ``0.13%``, not ``00.13%``)."""
        return [f"{100.0 * p:.2f}% {self.label(cls)}" for cls, p in top]

    def draw(self, frame: np.ndarray, top: Sequence[tuple[int, float]], status: str | None = None,
             maps: Sequence[StageMap] | None = None) -> np.ndarray:
        """A new 8-bit BGR image: ``frame`` with the token map (when given), labels and status drawn."""
        image = to_bgr8(frame)
        layout = self.status_layout(image, status) if status else None  # wrapped once, used twice
        if maps:
            self.draw_tokens(image, maps, bottom=layout_height(layout))
        texts = self.texts(top)
        boxes = label_boxes(texts, image.shape[0])
        draw_text_boxes(image, texts, boxes)
        if maps:
            self.draw_legend(image, maps, boxes[-1][3] + PAD if boxes else PAD)
        if layout:
            self.draw_status(image, layout)
        return image

    def draw_legend(self, image: np.ndarray, maps: Sequence[StageMap], y: int) -> None:
        """One line under the labels: a swatch per state that occurs (clusters shown by their first colours)."""
        c = cv2()
        scale = font_scale(image.shape[0])
        (_, h), base = c.getTextSize("Xg", c.FONT_HERSHEY_SIMPLEX, scale, 1)
        states = set(np.concatenate([m.state for m in maps]).tolist())
        entries = [("kept", None)] + [(name, colour) for state, name, colour in (
            (MATCHED, "matched", MATCH_COLOUR), (CLUSTERED, "clustered", None), (FUSED, "fused", FUSED_COLOUR))
            if state in states]
        widths = [h + 3 * PAD // 2 + c.getTextSize(name, c.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for name, _ in entries]
        c.rectangle(image, (PAD, y), (2 * PAD + sum(widths) + PAD * len(entries), y + h + base + 2 * PAD),
                    BACKGROUND, -1)
        x = 2 * PAD
        for (name, colour), width in zip(entries, widths):
            top = y + PAD
            if name == "clustered":  # three cluster colours side by side
                for i, col in enumerate(cluster_colours(3)):
                    c.rectangle(image, (x + i * h // 3, top), (x + (i + 1) * h // 3, top + h), col.tolist(), -1)
            else:
                c.rectangle(image, (x, top), (x + h, top + h), colour or TEXT, -1 if colour else 1)
            c.putText(image, name, (x + h + PAD, top + h), c.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, c.LINE_AA)
            x += width + PAD

    @staticmethod
    def status_layout(image: np.ndarray, status: str) -> tuple[list[str], float, int, int]:
        """``(lines, scale, line step, baseline offset)`` of the status text: wrapped at `` | `` and ``, ``."""
        c = cv2()
        scale = max(MIN_SCALE, 0.85 * font_scale(image.shape[0]))
        parts = [p for chunk in status.split(" | ") for p in chunk.split(", ")]
        lines = wrap(parts, image.shape[1] - 4 * PAD, scale)
        (_, h), base = c.getTextSize("Xg", c.FONT_HERSHEY_SIMPLEX, scale, 1)
        return lines, scale, h + base + PAD, base

    def status_height(self, image: np.ndarray, status: str | None) -> int:
        """Pixels the status takes at the bottom of the frame (0 without one)."""
        return layout_height(self.status_layout(image, status) if status else None)

    def draw_status(self, image: np.ndarray, layout: tuple[list[str], float, int, int]) -> None:
        """The status (its :meth:`status_layout`) bottom left, on as many lines as the frame's width needs; words
        are never cut."""
        c = cv2()
        lines, scale, step, base = layout
        width = max(c.getTextSize(line, c.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for line in lines)
        y1 = image.shape[0] - PAD
        c.rectangle(image, (PAD, y1 - len(lines) * step - PAD), (PAD + width + 2 * PAD, y1), BACKGROUND, -1)
        for i, line in enumerate(lines):
            baseline = y1 - PAD - base - (len(lines) - 1 - i) * step
            c.putText(image, line, (2 * PAD, baseline), c.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, c.LINE_AA)

    def draw_tokens(self, image: np.ndarray, maps: Sequence[StageMap], bottom: int = 0) -> None:
        """The last stage on the seen region; one panel per stage (at most four, evenly chosen) in a column right of
        it, or in a row at the bottom right, above the ``bottom`` pixels the status needs, when the frame has no
        room beside it."""
        c = cv2()
        x0, y0, x1, y1 = seen_region(*image.shape[:2], self.prep)
        crop = image[y0:y1, x0:x1].copy()
        tint(image[y0:y1, x0:x1], maps[-1], self.grid)
        c.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
        shown = [maps[round(i * (len(maps) - 1) / 3)] for i in range(4)] if len(maps) > 4 else list(maps)
        height = image.shape[0]
        side, places = panel_places(*image.shape[:2], x1, len(shown), bottom)
        small = c.resize(crop, (side, side), interpolation=c.INTER_LINEAR)  # a thumbnail: speed over fidelity
        scale = max(MIN_SCALE, 0.8 * font_scale(height))
        for stage, (px, py) in zip(shown, places):
            if px < 0 or py < 0:
                break
            panel = small.copy()
            tint(panel, stage, self.grid)
            caption = f"block {stage.block + 1}"  # white on the labels' grey, bottom left of the panel
            (w, h), base = c.getTextSize(caption, c.FONT_HERSHEY_SIMPLEX, scale, 1)
            c.rectangle(panel, (0, side - h - base - 2 * PAD), (w + 2 * PAD, side - 1), BACKGROUND, -1)
            c.putText(panel, caption, (PAD, side - PAD - base), c.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, c.LINE_AA)
            image[py:py + side, px:px + side] = panel
