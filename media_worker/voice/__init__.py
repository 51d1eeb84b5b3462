"""What the caller's turns are handed to: a voice pipeline that answers with speech (ASR → agent → TTS)."""
