"""Speech synthesis providers: text → streamed 16 kHz L16 audio."""
