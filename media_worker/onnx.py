"""One onnxruntime session per model and process, built the same way for every ONNX-backed provider.

Explicit thread options (the house rule for ONNX): ``threads`` intra-op threads, one inter-op thread,
sequential execution, warnings only. onnxruntime is imported when a session is built, not with the
settings (the controller reads those too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from switchyard.settings import SettingsModel

__all__ = ["OnnxModelSettings", "inference_session"]


class OnnxModelSettings(SettingsModel):
    """What a provider running one ONNX model has: the file and onnxruntime's thread count."""

    model_path: Path | None = Field(None, description="the .onnx file (default: the one its package ships)")
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads")


def inference_session(model: Path, threads: int) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` on the CPU with ``threads`` intra-op threads.

    Raises:
        Exception: whatever onnxruntime raises for a file it cannot load (it has no common base).
    """
    import onnxruntime as ort  # noqa: PLC0415 - loaded with the model, not with the settings

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
