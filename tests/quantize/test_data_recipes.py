"""Calibration sources (frames sampled evenly from a video, folders, synthetic) and recipe files."""


import numpy as np
import pytest

from tdm_edge.errors import UsageError
from tdm_edge.quantize.data import evenly, folder_frames, load_images, video_frames
from tdm_edge.quantize.recipes import CALIBRATION_DIR, DEFAULT, find_recipe, parse_recipe, read_recipe

PREP = {"input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def test_evenly_spreads_over_the_whole_range():
    assert evenly(100, 5) == [0, 25, 50, 74, 99]
    assert evenly(3, 5) == [0, 1, 2]


def test_video_frames_are_sampled_over_the_whole_video_not_the_first(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for i in range(20):
        writer.write(np.full((32, 48, 3), 10 * i, np.uint8))  # frame i has brightness 10 i
    writer.release()
    frames, names = video_frames(path, 4)
    assert names == ["frame0", "frame6", "frame13", "frame19"]
    assert [round(float(f.mean()) / 10) for f in frames] == [0, 6, 13, 19]


def test_folder_skips_unreadable_files_and_the_hash_follows_the_pixels(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 40, 3), 50 * i, np.uint8))
    (tmp_path / "3.png").write_bytes(b"broken")
    frames, names = folder_frames(tmp_path)
    assert names == ["0.png", "1.png", "2.png"] and "skipped 1 unreadable" in capsys.readouterr().err
    a = load_images(PREP, images=str(tmp_path))
    assert a.images.shape == (3, 3, 32, 32) and a.images[0].max() == pytest.approx(-1.0)  # black, mean/std 0.5
    cv2.imwrite(str(tmp_path / "2.png"), np.full((40, 40, 3), 101, np.uint8))
    assert load_images(PREP, images=str(tmp_path)).sha256 != a.sha256


def test_synthetic_scenes_are_seeded_and_need_one_source():
    a, b = load_images(PREP, synthetic=4, seed=1), load_images(PREP, synthetic=4, seed=1)
    assert a.sha256 == b.sha256 and a.source == "synthetic:seed=1" and len(a.images) == 4
    with pytest.raises(UsageError):
        load_images(PREP)


def test_recipes_shipped_parse_and_default_file_matches_the_built_in():
    default = read_recipe(CALIBRATION_DIR / "default.json")
    assert {**default.as_dict(), "description": "", "source": ""} == {**DEFAULT.as_dict(), "description": "",
                                                                      "source": ""}
    assert find_recipe("tdm_deit_small_patch16_224").method == "percentile"
    assert find_recipe("vit_unknown").name == "default"
    for path in CALIBRATION_DIR.glob("*.json"):
        assert read_recipe(path).name == path.stem


def test_bad_recipes_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown key"):
        parse_recipe({"methd": "minmax"}, "r.json")
    with pytest.raises(UsageError, match="method"):
        parse_recipe({"method": "kl"}, "r.json")
    (tmp_path / "r.json").write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_recipe(tmp_path / "r.json")
