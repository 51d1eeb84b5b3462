"""What the VAD batcher needs of a model (:class:`BatchedVadModel`), its settings base and its catalog.

The geometry is Silero VAD's (v5/v6, the only model so far): 16 kHz audio scored in windows of 512 new
samples, each row preceded by the last 64 samples of the stream's previous window, with a recurrent state of
``[2, B, 128]`` float32 per batch (zeros for a new stream). Rows are independent, so the windows of many
calls go through one run, each with its own state row (``media_worker.vad.batcher``). A VAD provider is a
module of ``media_worker/vad/`` with a ``PROVIDER`` whose settings extend :class:`VadSettings`.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import Field

from media_worker.registry import Catalog, ProviderSettings

__all__ = [
    "CONTEXT",
    "PROVIDERS",
    "RATE",
    "STATE_SIZE",
    "WINDOW",
    "BatchedVadModel",
    "VadSettings",
    "parse_vad",
]

RATE: Final = 16000
WINDOW: Final = 512  # samples scored per decision (32 ms)
CONTEXT: Final = 64  # samples of the previous window prepended to each input row
STATE_SIZE: Final = 128

F32 = npt.NDArray[np.float32]


class BatchedVadModel(Protocol):
    """A VAD model scoring a batch of windows of different streams in one run."""

    def score(self, windows: F32, state: F32) -> tuple[F32, F32]:
        """Score ``windows[B, CONTEXT + WINDOW]`` (floats in [-1, 1)) with ``state[2, B, STATE_SIZE]``.

        Returns:
            ``(prob[B], new_state[2, B, STATE_SIZE])``: each row's speech probability and next state.

        May block for the length of the run: the batcher calls it off the event loop.
        """
        ...


class VadSettings(ProviderSettings):
    """The ``media_worker.vad`` section: how windows are batched, and (in subclasses) the model's own."""

    tick_ms: int = Field(20, ge=4, le=32, description="how often pending windows of all calls are scored")
    max_batch: int = Field(1024, ge=1)


PROVIDERS: Catalog[BatchedVadModel] = Catalog("vad", "media_worker.vad", "silero", VadSettings)
"""The VAD providers: the modules of ``media_worker/vad/`` with a ``PROVIDER``."""


def parse_vad(value: object) -> VadSettings:
    """A ``vad:`` block as the settings of the provider it names (Silero when it names none)."""
    settings = PROVIDERS.parse(value)
    assert isinstance(settings, VadSettings)  # the catalog admits only VadSettings subclasses
    return settings
