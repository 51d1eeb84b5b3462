"""What the controller and the media worker share, and nothing else: neither imports the other for it.

``switchyard.settings`` (the settings base: one model class, the YAML file, ``SWITCHYARD_*`` overrides,
errors with field paths), ``switchyard.sections`` (the file's top-level sections and who reads which),
``switchyard.retry`` (the one backoff policy of reconnects and retries), ``switchyard.tasks`` (ending an
owner's tasks with a deadline), ``switchyard.wire`` (a stream's metadata, audio frames and close codes) and
``switchyard.messages`` (the stream's typed text messages, both ways).
"""
