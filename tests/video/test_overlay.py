"""The overlay a person can read: text sized to the frame, whole words, no zero padding, panels clear of the
status, a tint that keeps the picture visible."""

from __future__ import annotations

import numpy as np
import pytest

from tdm_edge.video.loop import STAGES, status_line
from tdm_edge.video.overlay import (MIN_SCALE, PAD, TINT_ALPHA, Overlay, font_scale, label_boxes, panel_places,
                                    seen_region, tint, wrap)
from tdm_edge.video.tokens import CLUSTERED, KEPT, StageMap

cv2 = pytest.importorskip("cv2", reason="the overlay draws with OpenCV")

PREP = {"input_size": [3, 56, 56], "crop_pct": 1.0, "interpolation": "bilinear", "mean": [0.5] * 3,
        "std": [0.5] * 3}
EMA = {"interval": 1 / 29.7, **{s: 10.0 + i for i, s in enumerate(STAGES)}}


def cap_height(scale: float) -> int:
    return cv2.getTextSize("X", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][1]


@pytest.mark.parametrize("height", [240, 448, 720, 1080])
def test_text_is_at_least_ten_pixels_and_grows_with_the_frame(height):
    assert font_scale(height) >= MIN_SCALE and cap_height(font_scale(height)) >= 9  # readable at 240 p
    assert font_scale(1080) > font_scale(720) > font_scale(448) >= MIN_SCALE
    # label boxes grow with the frame: at 720 p they are 1.5x those at 448 p or more
    assert label_boxes(["1.00% x"], 720)[0][3] >= 1.4 * label_boxes(["1.00% x"], 448)[0][3] - PAD


def test_percentages_have_no_zero_padding():
    overlay = Overlay(["cat", "dog"], PREP, (14, 14))
    assert overlay.texts([(0, 0.8011), (1, 0.0013)]) == ["80.11% cat", "0.13% dog"]


@pytest.mark.parametrize("width", [160, 320, 448, 1280])
def test_status_wraps_whole_words(width):
    status = status_line(EMA)
    assert status.startswith("29.7 FPS | ") and all(f"{s} " in status for s in STAGES)  # whole stage names
    lines = wrap([p for c in status.split(" | ") for p in c.split(", ")], width - 4 * PAD, MIN_SCALE)
    words = " ".join(lines).split()
    assert words == status.replace(" | ", " ").replace(", ", " ").split()  # nothing cut, nothing lost
    fits = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, MIN_SCALE, 1)[0][0] <= width - 4 * PAD
            for line in lines]
    assert all(fits) or width == 160  # a frame narrower than one entry: that entry alone on its line
    assert status_line({}) is None  # no rate before two frames


@pytest.mark.parametrize("size", [(448, 448), (720, 1280), (240, 320)])
def test_panels_stay_clear_of_the_status(size):
    height, width = size
    overlay = Overlay(None, PREP, (2, 2))
    image = np.zeros((height, width, 3), np.uint8)
    reserved = overlay.status_height(image, status_line(EMA))
    lines = overlay.status_layout(image, status_line(EMA))[0]
    assert reserved > 0 and len(lines) == (1 if width >= 1280 else len(lines))  # one line at 720 p
    x0, _, x1, _ = seen_region(height, width, PREP)
    side, places = panel_places(height, width, x1, 3, reserved)
    if width - x1 - 2 * PAD >= 64:  # a column beside the seen region: never below the frame's top rows
        assert all(x >= x1 for x, _ in places)
    else:  # a row above the status
        assert all(y + side <= height - reserved for _, y in places)
    assert side >= 48


def test_tint_keeps_the_picture():
    picture = np.zeros((20, 20, 3), np.uint8)
    picture[:, :10] = 255  # half white, half black
    stage = StageMap(0, np.array([CLUSTERED] * 4), np.zeros(4, int), np.zeros(4, int), np.zeros(4, int))
    tinted = picture.copy()
    tint(tinted, stage, (2, 2))
    white_side, black_side = tinted[5:15, 2:8].astype(int).mean(), tinted[5:15, 12:18].astype(int).mean()
    # still far apart: the tint moves a pixel at most TINT_ALPHA of the way to the tint colour
    assert white_side - black_side >= (1 - TINT_ALPHA) * 255 - 1
    assert TINT_ALPHA <= 0.4
