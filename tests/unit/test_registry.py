"""Providers by name (``media_worker.registry``): a provider is one module with ``PROVIDER``; its catalog
finds it, validates the blocks that name it, and builds it. Reading settings loads no engine."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from media_worker.agent.base import PROVIDERS as AGENT_PROVIDERS
from media_worker.asr.base import PROVIDERS as ASR_PROVIDERS
from media_worker.registry import Catalog, RegistryError
from media_worker.settings import WorkerSettings
from media_worker.tts.base import PROVIDERS as TTS_PROVIDERS
from media_worker.tts.base import TTS
from media_worker.vad.model import PROVIDERS as VAD_PROVIDERS
from media_worker.vad.silero import SileroVadSettings
from media_worker.voice.settings import AgentSettings

ROOT = Path(__file__).resolve().parents[2]

LOUD = """
from collections.abc import AsyncIterator
from typing import Literal

from media_worker.registry import Provider, ProviderSettings
from media_worker.settings import WorkerSettings
from media_worker.tts.base import TTS
from media_worker.vad.model import PROVIDERS as VAD_PROVIDERS
from media_worker.vad.silero import SileroVadSettings


class LoudSettings(ProviderSettings):
    provider: Literal["loud"]
    volume: int = 11


class Loud(TTS):
    def __init__(self, settings: LoudSettings) -> None:
        self.settings = settings

    async def synthesize(self, text: str, voice: str | None = None) -> AsyncIterator[bytes]:
        yield b"\\x00\\x00" * self.settings.volume


PROVIDER = Provider(LoudSettings, lambda settings, _executor: Loud(settings))
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty provider package ``fakeproviders`` on ``sys.path``; its modules are dropped afterwards."""
    root = tmp_path / "fakeproviders"
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m == "fakeproviders" or m.startswith("fakeproviders.")]:
        del sys.modules[name]


def test_the_shipped_providers_are_found_by_name() -> None:
    assert sorted(ASR_PROVIDERS.providers) == ["deepgram", "openai", "whisper"]
    assert sorted(TTS_PROVIDERS.providers) == ["espeak", "openai", "piper"]
    assert sorted(AGENT_PROVIDERS.providers) == ["openai", "scripted"]


async def test_adding_a_provider_is_adding_one_module(package: Path) -> None:
    (package / "loud.py").write_text(textwrap.dedent(LOUD))
    (package / "helpers.py").write_text("X = 1\n")  # a module without PROVIDER is no provider
    catalog: Catalog[TTS] = Catalog("tts", "fakeproviders")
    assert list(catalog.providers) == ["loud"]
    settings = catalog.parse({"provider": "loud", "volume": 2})
    assert settings.model_dump() == {"provider": "loud", "volume": 2}
    with ThreadPoolExecutor(1) as executor:
        tts = catalog.make(settings, executor)
    assert [chunk async for chunk in tts.synthesize("hi")] == [b"\x00\x00" * 2]


def test_a_name_declared_twice_or_a_malformed_provider_is_refused(package: Path) -> None:
    (package / "loud.py").write_text(textwrap.dedent(LOUD))
    (package / "louder.py").write_text(textwrap.dedent(LOUD))
    with pytest.raises(RegistryError, match="tts provider 'loud' is declared twice"):
        _ = Catalog[TTS]("tts", "fakeproviders").providers
    (package / "louder.py").write_text("PROVIDER = 'loud'\n")
    del sys.modules["fakeproviders.louder"]
    with pytest.raises(RegistryError, match=r"fakeproviders.louder.PROVIDER is not a Provider"):
        _ = Catalog[TTS]("tts", "fakeproviders").providers


def test_a_block_is_validated_as_the_provider_it_names_with_its_field_path() -> None:
    with pytest.raises(ValidationError) as refused:
        AgentSettings.model_validate(
            {"name": "a", "asr": {"provider": "nope"}, "tts": {"provider": "openai", "bogus": 1}}
        )
    errors = {".".join(map(str, e["loc"])): e["msg"] for e in refused.value.errors()}
    assert errors["asr"] == "provider 'nope' is not a known asr provider (deepgram, openai, whisper)"
    assert errors["tts.base_url"] == "Field required"
    assert errors["tts.bogus"] == "Extra inputs are not permitted"
    with pytest.raises(ValidationError, match="a mapping with a provider is expected"):
        AgentSettings.model_validate({"name": "a", "agent": "scripted"})
    with pytest.raises(ValidationError, match="provider None is not a known agent provider"):
        AgentSettings.model_validate({"name": "a", "agent": {"intents": []}})


def test_defaults_and_dumps_keep_each_providers_own_fields() -> None:
    agent = AgentSettings.model_validate(
        {"name": "a", "asr": {"provider": "deepgram", "url": "wss://dg.example/v1/listen"}}
    )
    dumped = agent.model_dump(mode="json")
    assert dumped["asr"]["url"] == "wss://dg.example/v1/listen"
    assert dumped["tts"] == {"provider": "piper", "model_path": None, "threads": 1}
    assert dumped["agent"]["provider"] == "scripted"
    assert "intents" in dumped["agent"]
    assert AgentSettings.model_validate(dumped) == agent


def test_reading_settings_loads_no_engine() -> None:
    probe = (
        "import sys; from controller.settings import Settings; "
        "Settings.model_validate({'agents': [{'name': 'a', 'asr': {'provider': 'whisper'}, "
        "'tts': {'provider': 'piper'}}]}); "
        "print(sorted(m for m in ('faster_whisper', 'piper', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_vad_is_a_provider_too_and_a_block_without_provider_is_silero() -> None:
    assert list(VAD_PROVIDERS.providers) == ["silero"]
    vad = WorkerSettings.model_validate({"vad": {"tick_ms": 10, "threads": 2}}).vad
    assert isinstance(vad, SileroVadSettings)
    assert (vad.provider, vad.tick_ms, vad.threads) == ("silero", 10, 2)
    with pytest.raises(ValidationError, match="provider 'webrtcvad' is not a known vad provider"):
        WorkerSettings.model_validate({"vad": {"provider": "webrtcvad"}})
