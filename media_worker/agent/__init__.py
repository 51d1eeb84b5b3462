"""Conversation agents: a caller's words → the agent's words, streamed, and the actions it asks for."""
