"""The line we print when cv2 does not import (tdm_edge.video.cvutil.import_failure), for each way it fails."""

from tdm_edge.video.cvutil import CV2_HINT, import_failure

NUMPY2_NOISE = ("A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.1.3 as it may crash. ...\n"
                "AttributeError: _ARRAY_API not found\n")


def test_numpy_2_against_an_opencv_built_for_numpy_1():
    line = import_failure(ImportError("numpy.core.multiarray failed to import"), NUMPY2_NOISE, numpy_version="2.1.3")
    assert line.startswith("numpy 2.1.3 is installed but this OpenCV was built for numpy 1.x: pip install 'numpy<2'")
    assert "\n" not in line


def test_an_older_numpy_than_the_opencv_build():
    err = ImportError("numpy.core.multiarray failed to import")
    line = import_failure(err, "RuntimeError: module compiled against API version 0xe but this version of numpy is 0xd",
                          numpy_version="1.17.4")
    assert line.startswith("this OpenCV was built for another numpy than 1.17.4")


def test_a_missing_shared_library_is_named_with_its_package():
    err = ImportError("libgthread-2.0.so.0: cannot open shared object file: No such file or directory")
    line = import_failure(err, numpy_version="1.26.4")
    assert "libgthread-2.0.so.0 is missing (sudo apt install libglib2.0-0" in line
    err = ImportError("libnvbufsurface.so.1.0.0: cannot open shared object file: No such file or directory")
    assert "install the package that provides libnvbufsurface.so.1.0.0" in import_failure(err, numpy_version="1.26.4")


def test_no_opencv_at_all_keeps_the_install_hint():
    assert import_failure(ModuleNotFoundError("No module named 'cv2'", name="cv2")) == CV2_HINT


def test_anything_else_is_its_first_line():
    line = import_failure(ImportError("ERROR: recursion is detected during loading of \"cv2\" binary extensions\nmore"),
                          numpy_version="1.26.4")
    assert line.startswith("OpenCV does not import (ERROR: recursion is detected") and "more" not in line
