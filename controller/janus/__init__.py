"""Janus: its settings and (issue 7) the adapter that drives it."""
