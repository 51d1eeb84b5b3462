"""The Janus layer's exceptions, importable without the Admin API client's name.

They are defined once, in :mod:`controller.janus.admin` (contract: ``JanusError(code, reason)`` and
``JanusUnavailable(JanusError)``); this module re-exports the same classes, so ``except JanusError`` catches
errors of the Admin API, the SIP plugin client (:mod:`controller.janus.sip`) and the Janus API alike::

    JanusError              Janus answered with an error: ``code`` (``src/apierror.h``, a SIP plugin
    │                       ``error_code``, or the SIP status of a failure event) and ``reason``
    └── JanusUnavailable    no usable answer: transport failure or a missed deadline (``code`` 0)
"""

from __future__ import annotations

from controller.janus.admin import JanusError, JanusUnavailable

__all__ = ["JanusError", "JanusUnavailable"]
