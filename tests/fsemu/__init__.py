"""FreeSWITCH emulator for CI: loopback ESL server + mod_audio_stream client, as the captures show."""

from tests.fsemu.channel import EmulatedChannel
from tests.fsemu.server import EmulatorConfig, FreeSwitchEmulator

__all__ = ["EmulatedChannel", "EmulatorConfig", "FreeSwitchEmulator"]
