"""Stage 6, benchmarks: the pruned model against its unpruned baseline and the ideal slice, on every backend.

  stats.py     pure statistics on timings: percentiles, round-robin order, paired ratios, summaries over repeats
  models.py    the compared models from one set of weights (unpruned, pruned, ideal slice; trained-like weights)
  backends.py  what each backend needs (an ONNX file, a saved module, an engine) and the runner that times it
  run.py       one benchmark: interleaved rounds, repeated in fresh processes, a result with its provenance
  plot.py      the pictures (matplotlib, imported when a plot is asked for)
  tune.py      a ladder of keep rates measured on this device; the highest one that meets a target FPS
  commands.py  ``tdm-edge bench`` and ``tdm-edge tune``
"""
