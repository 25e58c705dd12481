"""Stage 3, TensorRT engines: ``tdm-edge build`` (ONNX -> engine + sidecar) for TensorRT 8.5, 8.6, 10.x, 11.x.

  versions.py  which TensorRT API path for which version (pure functions of a version string)
  build.py     ``build_engine``: parse, configure, build, write engine + sidecar atomically
  sidecar.py   the engine's sidecar record (TensorRT, GPU, precision, schedule, hashes, metadata)
  commands.py  the ``build`` subcommand

``tensorrt`` is imported only when an engine is built; the TensorRT runner is ``tdm_edge.runners.tensorrt``.
"""
