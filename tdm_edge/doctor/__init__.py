"""``tdm-edge doctor``: one screen about this machine for a bug report, and which commands can run here.

Device side (Python 3.8+, no torch import: torch and timm are only looked up with ``importlib.util.find_spec``).
:mod:`.jetson` reads the Jetson's own files (L4T release, power mode, clocks), :mod:`.probe` the Python packages
and the CUDA driver, :mod:`.report` turns those facts into the per-command verdicts and the screen, and
:mod:`.commands` registers the subcommand. Every reader takes its paths, modules or texts as parameters, so the
tests feed stand-ins.
"""
