"""The integration tier's ESL targets (the emulator, and the real FreeSWITCH with ``-m live``)."""

from tests.integration.conftest import emulator, esl_target

__all__ = ["emulator", "esl_target"]
