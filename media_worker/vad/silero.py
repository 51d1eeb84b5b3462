"""Silero VAD run with onnxruntime directly (no torch), batched across calls: the ``silero`` VAD provider.

The ``silero-vad`` wheel ships ``silero_vad/data/silero_vad.onnx`` (opset 16). Its inputs are
``input[B, 576]`` (64 samples of context from the previous window + 512 new samples at 16 kHz, float32 in
[-1, 1)), ``state[2, B, 128]`` (the recurrent state, one row per stream) and ``sr`` (int64 scalar); its
outputs ``output[B, 1]`` (speech probability) and ``stateN[2, B, 128]``. Rows are independent, so the
windows of many calls are scored in one run with each call's own state row.

The wheel's Python package imports torch on import, so the model file is located without importing it.

Exceptions::

    VadModelError       the model file is missing or does not have the expected signature
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import Executor
from pathlib import Path
from typing import Literal

import numpy as np

from media_worker.onnx import OnnxModelSettings, inference_session
from media_worker.registry import Provider
from media_worker.vad.model import F32, RATE, VadSettings

__all__ = ["PROVIDER", "SileroModel", "SileroVadSettings", "VadModelError", "default_model_path"]


class SileroVadSettings(VadSettings, OnnxModelSettings):
    """The shared Silero session (the default VAD: ``vad:`` without ``provider`` means this one); the
    model defaults to the silero-vad wheel's."""

    provider: Literal["silero"] = "silero"


class VadModelError(Exception):
    """The Silero model cannot be loaded or does not look like Silero VAD v5/v6."""


def default_model_path() -> Path:
    """``silero_vad/data/silero_vad.onnx`` inside the installed wheel.

    Raises:
        VadModelError: the ``silero-vad`` package is not installed.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("the silero-vad package is not installed (pip install --no-deps silero-vad)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


class SileroModel:
    """One inference session; :meth:`score` runs a batch of windows with their state rows (a
    :class:`~media_worker.vad.model.BatchedVadModel`)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        model = path or default_model_path()
        if not model.is_file():
            raise VadModelError(f"VAD model not found: {model}")
        try:
            self._session = inference_session(model, threads)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise VadModelError(f"cannot load VAD model {model}: {exc}") from exc
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise VadModelError(f"{model}: inputs {sorted(names)}, expected input, state, sr")
        self._sr = np.array(RATE, dtype=np.int64)

    def score(self, windows: F32, state: F32) -> tuple[F32, F32]:
        """Score ``windows[B, 576]`` with ``state[2, B, 128]``; returns ``(prob[B], new_state[2, B, 128])``.

        Blocks for the length of the run (onnxruntime releases the GIL meanwhile): call it off the loop.
        """
        output, new_state = self._session.run(None, {"input": windows, "state": state, "sr": self._sr})
        probs: F32 = np.asarray(output, dtype=np.float32).reshape(-1)
        return probs, np.asarray(new_state, dtype=np.float32)


def _make(settings: SileroVadSettings, _executor: Executor) -> SileroModel:
    return SileroModel(settings.model_path, settings.threads)


PROVIDER = Provider(SileroVadSettings, _make)
