"""GStreamer pipelines, flip and codec names against jetson-utils (dusty-nv/jetson-utils fae4b42, read from
cpp/camera/gstCamera.cpp, cpp/codec/gstDecoder.cpp, cpp/codec/gstUtility.cpp, cpp/video/videoOptions.cpp).

Each jetson-utils string below is what its buildLaunchStr() writes for the same input (JetPack 5 with NVMM on,
or x86 for the CPU decoders); ours must equal it up to where jetson-utils hands NVMM or RGB to CUDA and we convert
to BGR for OpenCV instead."""

import pytest

from tdm_edge.errors import UsageError
from tdm_edge.video.pipelines import (FLIPS, codec_name, csi_flip_method, csi_pipeline, ffmpeg_capture_options,
                                      file_pipeline, flip_name, gst_has, gst_plugin_dirs, pick_decoder, quote,
                                      rtsp_pipeline)

TO_BGR_LIVE = ("videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false")
TO_BGR_FILE = "videoconvert ! video/x-raw, format=(string)BGR ! appsink sync=false"
NVMM_TO_BGR = "nvvidconv ! video/x-raw, format=(string)BGRx ! "


def shared_prefix(ours: str, theirs: str, theirs_tail: str) -> str:
    """jetson-utils' pipeline without its own tail (its sink); must begin ours."""
    assert theirs.endswith(theirs_tail)
    return theirs[: len(theirs) - len(theirs_tail)]


def test_csi_pipeline_is_jetson_utils_with_bgr_for_opencv():
    theirs = ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, "
              "framerate=30/1, format=(string)NV12 ! nvvidconv flip-method=2 ! video/x-raw(memory:NVMM) ! "
              "appsink name=mysink")
    ours = csi_pipeline(0)  # --input-flip none: jetson-utils swaps it to rotate-180 (flip-method 2)
    assert ours == ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, "
                    "framerate=30/1, format=(string)NV12 ! nvvidconv flip-method=2 ! video/x-raw, "
                    "format=(string)BGRx ! " + TO_BGR_LIVE)
    assert ours.startswith(shared_prefix(ours, theirs, "video/x-raw(memory:NVMM) ! appsink name=mysink"))


def test_csi_pipeline_size_rate_and_flip():
    assert csi_pipeline(1, 1920, 1080, 29.97, "rotate-180") == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, "
        "framerate=29970/1000, format=(string)NV12 ! nvvidconv flip-method=0 ! video/x-raw, format=(string)BGRx ! "
        + TO_BGR_LIVE)


def test_csi_flip_swaps_none_and_rotate_180_only():
    assert [csi_flip_method(f) for f in FLIPS] == [2, 1, 0, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("spelling, name", [("none", "none"), ("horizontal", "horizontal-flip"),
                                            ("Horizontal-Flip", "horizontal-flip"), ("vertical", "vertical-flip"),
                                            ("VERTICAL-FLIP", "vertical-flip"), ("clockwise", "clockwise"),
                                            ("upper-left-diagonal", "upper-left-diagonal")])
def test_flip_names_accept_jetson_utils_spellings(spelling, name):
    assert flip_name(spelling) == name


def test_flip_and_codec_refuse_other_names():
    with pytest.raises(UsageError, match="unknown --input-flip 'rotate-90'"):
        flip_name("rotate-90")
    with pytest.raises(UsageError, match="unknown --input-codec 'av1'"):
        codec_name("av1")
    assert codec_name("H264") == "h264" and codec_name("MJPEG") == "mjpeg"


def test_decoder_choice_follows_gst_select_decoder():
    assert pick_decoder("h264", "auto", True) == "v4l2"
    assert pick_decoder("h264", "auto", False) == "cpu"
    assert pick_decoder("h265", "cpu", True) == "cpu"
    assert pick_decoder("mjpeg", "v4l2", True) == "cpu"  # MJPEG always on the CPU there
    with pytest.raises(UsageError, match="--input-decoder 'omx'"):
        pick_decoder("h264", "omx", True)


def test_rtsp_hardware_h264_is_jetson_utils_then_bgr():
    url = "rtsp://cam.local:8554/live"
    theirs = (f"rtspsrc location={url} latency=10 ! queue ! rtph264depay ! nvv4l2decoder name=decoder "
              "enable-max-performance=1 ! video/x-raw(memory:NVMM) ! appsink name=mysink sync=false")
    ours = rtsp_pipeline(url, 10, "h264", "v4l2")
    assert ours == (f"rtspsrc location={url} latency=10 ! queue ! rtph264depay ! nvv4l2decoder name=decoder "
                    "enable-max-performance=1 ! video/x-raw(memory:NVMM) ! " + NVMM_TO_BGR + TO_BGR_LIVE)
    assert ours.startswith(shared_prefix(ours, theirs, "appsink name=mysink sync=false"))


def test_rtsp_cpu_h265_has_the_parser_and_latency():
    url = "rtsp://user:pw@10.0.0.2/stream1"
    theirs = (f"rtspsrc location={url} latency=200 ! queue ! rtph265depay ! h265parse ! avdec_h265 name=decoder ! "
              "video/x-raw ! appsink name=mysink sync=false")  # x86 (no NVMM)
    ours = rtsp_pipeline(url, 200, "h265", "cpu")
    assert ours == (f"rtspsrc location={url} latency=200 ! queue ! rtph265depay ! h265parse ! avdec_h265 "
                    "name=decoder ! video/x-raw ! " + TO_BGR_LIVE)
    assert ours.startswith(shared_prefix(ours, theirs, "appsink name=mysink sync=false"))


def test_rtsp_mjpeg_and_unknown_codec():
    assert rtsp_pipeline("rtsp://h/x", 0, "mjpeg", "cpu") == (
        "rtspsrc location=rtsp://h/x latency=0 ! queue ! rtpjpegdepay ! jpegdec name=decoder ! video/x-raw ! "
        + TO_BGR_LIVE)
    assert rtsp_pipeline("rtsp://h/x") == ("rtspsrc location=rtsp://h/x latency=10 ! queue ! decodebin ! "
                                           + TO_BGR_LIVE)
    assert rtsp_pipeline("rtsp://h/x", has_nvvidconv=True) == (
        "rtspsrc location=rtsp://h/x latency=10 ! queue ! decodebin ! " + NVMM_TO_BGR + TO_BGR_LIVE)


def test_file_pipelines_demux_by_extension_as_gst_decoder():
    theirs = "filesrc location=/v/clip.mp4 ! qtdemux ! queue ! h264parse ! avdec_h264 name=decoder ! video/x-raw ! " \
             "appsink name=mysink"
    ours = file_pipeline("/v/clip.mp4", "h264", "cpu")
    assert ours == ("filesrc location=/v/clip.mp4 ! qtdemux ! queue ! h264parse ! avdec_h264 name=decoder ! "
                    "video/x-raw ! " + TO_BGR_FILE)
    assert ours.startswith(shared_prefix(ours, theirs, "appsink name=mysink"))
    assert file_pipeline("/v/a.mkv", "vp9", "cpu").startswith("filesrc location=/v/a.mkv ! matroskademux ! queue ! "
                                                              "vp9dec name=decoder ! ")
    assert file_pipeline("/v/a.h264", "h264", "v4l2") == (
        "filesrc location=/v/a.h264 ! queue ! h264parse ! nvv4l2decoder name=decoder enable-max-performance=1 ! "
        "video/x-raw(memory:NVMM) ! " + NVMM_TO_BGR + TO_BGR_FILE)
    assert file_pipeline("/v/my clip.avi") == ('filesrc location="/v/my clip.avi" ! decodebin ! ' + TO_BGR_FILE)
    with pytest.raises(UsageError, match=r"\.ts file"):
        file_pipeline("/v/a.ts", "h264", "cpu")


def test_quote_only_when_needed():
    assert quote("rtsp://u:p@h:554/a?x=1&y=2") == "rtsp://u:p@h:554/a?x=1&y=2"
    assert quote('/a b/"c"\\d') == '"/a b/\\"c\\"\\\\d"'


def test_ffmpeg_options_carry_the_latency_in_microseconds():
    assert ffmpeg_capture_options(10) == "fflags;nobuffer|max_delay;10000"
    assert ffmpeg_capture_options(2000) == "fflags;nobuffer|max_delay;2000000"


def test_gst_has_reads_the_plugin_folders(tmp_path):
    empty, core, argus = (tmp_path / n for n in ("empty", "core", "argus"))
    for folder in (empty, core, argus):
        folder.mkdir()
    (core / "libgstcoreelements.so").write_bytes(b"")
    (argus / "libgstnvarguscamerasrc.so").write_bytes(b"")
    assert gst_has("nvarguscamerasrc", [str(empty)]) is None  # no GStreamer found: unknown
    assert gst_has("nvarguscamerasrc", [str(core)]) is False
    assert gst_has("nvarguscamerasrc", [str(core), str(argus)]) is True
    assert gst_has("nvv4l2decoder", [str(core)]) is False


def test_gst_plugin_dirs_follow_gstreamer_variables():
    env = {"GST_PLUGIN_PATH": "/a:/b", "GST_PLUGIN_SYSTEM_PATH_1_0": "/sys1", "GST_PLUGIN_SYSTEM_PATH": "/sys0"}
    assert gst_plugin_dirs(env) == ["/a", "/b", "/sys1"]
    assert gst_plugin_dirs({"GST_PLUGIN_PATH_1_0": "/x"})[0] == "/x"
    assert "/usr/lib/gstreamer-1.0" in gst_plugin_dirs({})
