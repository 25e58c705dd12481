"""The interface every backend's runner shares (after Polygraphy's ``BaseRunner``).

::

    with OnnxRuntimeRunner("model.onnx") as runner:
        outputs = runner.infer({"input": batch})  # {name: np.ndarray}
        print(runner.last_inference_time())

A runner is created cheaply; :meth:`Runner.activate` (or entering the ``with`` block) does the expensive part (a
session, an engine, buffers) and :meth:`Runner.deactivate` frees it. :meth:`Runner.infer` checks the feed against
:meth:`Runner.input_metadata` (names, dtypes, shapes; ``None`` marks a dynamic dimension) before it runs, so a bad
feed fails with one clear line instead of a backend's stack trace, and it records the time of the last inference.
A backend implements ``activate_impl``, ``deactivate_impl``, ``input_metadata_impl`` and ``infer_impl``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError


class RunnerError(RuntimeError):
    """A runner used out of order (inference before ``activate``, activating twice)."""


class FeedError(UsageError):
    """A feed that does not match the model's inputs; the message is one line."""


@dataclass(frozen=True)
class TensorMeta:
    """Name, dtype and shape of one input; ``None`` in ``shape`` is a dynamic dimension (the batch)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


def check_feed(feed: Mapping[str, np.ndarray], metadata: Sequence[TensorMeta]) -> None:
    """Raise :class:`FeedError` unless ``feed`` has exactly the inputs in ``metadata``, with their dtypes and shapes."""
    expected = [m.name for m in metadata]
    missing = [n for n in expected if n not in feed]
    extra = [n for n in feed if n not in expected]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
        raise FeedError(f"feed inputs do not match the model's: {'; '.join(parts)} "
                        f"(expected {', '.join(m.describe() for m in metadata)})")
    for meta in metadata:
        value = feed[meta.name]
        if not isinstance(value, np.ndarray):
            raise FeedError(f"input {meta.name!r} is a {type(value).__name__}, expected a numpy array")
        if value.dtype != meta.dtype:
            raise FeedError(f"input {meta.name!r} has dtype {value.dtype.name}, expected {meta.describe()}")
        if len(value.shape) != len(meta.shape) or any(
                d is not None and d != v for d, v in zip(meta.shape, value.shape)):
            raise FeedError(f"input {meta.name!r} has shape {list(value.shape)}, expected {meta.describe()}")


class Runner(abc.ABC):
    """One backend's inference session: a context manager with ``infer(feed) -> {name: array}``."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self.is_active = False
        self._last_time: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def activate(self) -> None:
        if self.is_active:
            raise RunnerError(f"{self.name} is already active")
        self.activate_impl()
        self.is_active = True

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- inference ---------------------------------------------------------------------------------------------
    def input_metadata(self) -> list[TensorMeta]:
        """The inputs, in order, with their dtypes and shapes (``None`` = dynamic). Needs an active runner."""
        self._require_active("input_metadata")
        return list(self.input_metadata_impl())

    def infer(self, feed: Mapping[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run one inference. ``feed`` maps input names to arrays; returns ``{output name: array}``."""
        self._require_active("infer")
        if check_inputs:
            check_feed(feed, self.input_metadata_impl())
        start = time.perf_counter()
        outputs = self.infer_impl(feed)
        self._last_time = time.perf_counter() - start
        return outputs

    def last_inference_time(self) -> float | None:
        """Seconds the last :meth:`infer` spent in the backend (synchronised), or ``None`` before the first."""
        return self._last_time

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise RunnerError(f"{self.name}.{what}() needs an active runner: use 'with runner:' or activate()")

    # -- what a backend implements -----------------------------------------------------------------------------
    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def deactivate_impl(self) -> None: ...

    @abc.abstractmethod
    def input_metadata_impl(self) -> Sequence[TensorMeta]: ...

    @abc.abstractmethod
    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend; must return only after the results are on the host (timing relies on it)."""
