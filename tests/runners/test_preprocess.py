from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from timm.data import create_transform

from tdm_edge.errors import UsageError
from tdm_edge.runners.preprocess import preprocess, resize_size, to_rgb_uint8

PREP = {"input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _timm(rgb: np.ndarray) -> np.ndarray:
    cfg = {k: PREP[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")}
    return create_transform(**cfg, is_training=False)(Image.fromarray(rgb)).numpy()


def test_crop_and_normalise_equal_timm_exactly_without_resize():
    # 256 x 300: timm resizes the shorter side to floor(224 / 0.875) = 256, so there is no resampling to differ in
    rgb = np.random.default_rng(0).integers(0, 256, (256, 300, 3), dtype=np.uint8)
    assert resize_size(256, 300, PREP) == (256, 300)
    ours = preprocess(rgb, PREP, channel_order="RGB")
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], _timm(rgb), atol=1e-5)


def test_resized_frames_stay_close_to_timm_and_bgr_is_swapped():
    y, x = np.mgrid[0:480, 0:640]
    rgb = np.stack([x * 255 // 639, y * 255 // 479, (x + y) * 255 // 1118], -1).astype(np.uint8)  # smooth ramps
    ours = preprocess(rgb[:, :, ::-1], PREP)  # given as BGR, as OpenCV reads it
    assert np.abs(ours[0] - _timm(rgb)).mean() < 0.02  # OpenCV's INTER_AREA vs Pillow's antialiased bicubic
    assert ours[0, 0].mean() < ours[0, 2].mean() + 1.0  # red ramp stays red: channels were swapped back


def test_odd_frames_are_converted():
    gray16 = np.full((50, 60), 65535, np.uint16)
    assert to_rgb_uint8(gray16).tolist()[0][0] == [255, 255, 255]
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0] = 200  # blue in BGRA
    assert to_rgb_uint8(bgra)[0, 0].tolist() == [0, 0, 200]
    with pytest.raises(UsageError):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))


def test_bgr_frames_equal_their_rgb_copy_exactly():
    # the channel swap happens on the crop, after resizing: it must give what swapping the whole frame first gives
    bgr = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    np.testing.assert_array_equal(preprocess(bgr, PREP, channel_order="BGR"), preprocess(rgb, PREP, channel_order="RGB"))


def _photo_720p() -> np.ndarray:
    """A real photograph (matplotlib's sample Grace Hopper portrait) stretched to a 1280x720 BGR camera frame."""
    import cv2
    import matplotlib

    photo = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    assert photo is not None
    return cv2.resize(photo, (1280, 720), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("size", [224, 56])
def test_fast_path_stays_near_timm_on_a_photo(size):
    prep = dict(PREP, input_size=[3, size, size])
    frame = _photo_720p()
    cfg = {k: prep[k] for k in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")}
    timm_x = create_transform(**cfg, is_training=False)(Image.fromarray(frame[:, :, ::-1].copy())).numpy()
    exact_err = np.abs(preprocess(frame, prep)[0] - timm_x).mean()
    fast_err = np.abs(preprocess(frame, prep, fast=True)[0] - timm_x).mean()
    # measured: 224 px 0.017 (exact) / 0.028 (fast); 56 px 0.043 / 0.097, in normalised units (1 grey ~ 0.017)
    assert exact_err < 0.05 and fast_err < 2.5 * exact_err and fast_err < 0.12


def test_fast_path_puts_a_detail_where_the_exact_path_does():
    # one smooth bright blob on black, anywhere in the crop: its centre of mass must land on the same spot (no
    # half-pixel shift from cropping at whole source pixels); a wrong offset or scale in the warp moves it >= 0.3 px
    yy, xx = np.mgrid[0:720, 0:1280]
    for y, x in ((360.0, 640.0), (101.3, 420.6), (655.5, 861.2), (300.7, 950.1)):
        blob = 255 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 5.0 ** 2))  # sigma 5 px: no aliasing
        frame = np.repeat(blob[:, :, None], 3, axis=2).round().astype(np.uint8)
        centres = []
        for fast in (False, True):
            img = preprocess(frame, PREP, fast=fast)[0, 0]
            img = img - img.min()
            oy, ox = np.mgrid[0:224, 0:224]
            centres.append(((img * oy).sum() / img.sum(), (img * ox).sum() / img.sum()))
        (ey, ex), (fy, fx) = centres
        assert abs(ey - fy) < 0.05 and abs(ex - fx) < 0.05, (y, x, centres)  # measured <= 0.01


def test_fast_path_is_the_exact_path_without_a_big_shrink():
    frame = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # 300 -> 256: under 2x
    np.testing.assert_array_equal(preprocess(frame, PREP, fast=True), preprocess(frame, PREP))
