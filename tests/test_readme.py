"""The README's shell blocks marked runnable (a fenced block right after a `<!-- runnable -->` line) run as written,
in an empty folder, with the venv's `tdm-edge` on PATH; and the blocks that make a training set also make its val/."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = "<!-- runnable -->"


def runnable_blocks(text: str) -> list[str]:
    """The body of every fenced block whose opening fence comes right after the marker line (blank lines allowed)."""
    return re.findall(re.escape(MARK) + r"\s*\n```(?:bash|sh)?\n(.*?)\n```", text, flags=re.S)


def test_runnable_blocks_are_found_only_after_the_marker():
    text = "```bash\nnot this\n```\n" + MARK + "\n\n```bash\necho a\necho b\n```\n" + MARK + "\n```\ntrue\n```\n"
    assert runnable_blocks(text) == ["echo a\necho b", "true"]


def test_every_training_example_makes_the_val_folder_it_needs():
    text = README.read_text()
    for line in re.findall(r"^.*tdm-edge train --data (\S+).*$", text, flags=re.M):
        data = line.rstrip("/")
        assert f"make-dataset {data}/val" in text, f"the README trains on {data} but never makes {data}/val"


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks(README.read_text()))
def test_readme_block_runs_as_written(block, tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"README block failed:\n{block}\n--- stderr ---\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr


def test_the_readme_has_a_runnable_first_run():
    blocks = runnable_blocks(README.read_text())
    assert blocks and any("tdm-edge train" in b and "tdm-edge eval" in b for b in blocks)
