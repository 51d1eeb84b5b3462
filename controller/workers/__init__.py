"""Media workers as the controller sees them: the pool (heartbeats, load) and per-call streams to them."""
