"""Speech recognition providers: 16 kHz L16 utterances → text with timings."""
