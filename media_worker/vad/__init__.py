"""Voice activity detection: one batched Silero session per process, a speech detector per call."""
