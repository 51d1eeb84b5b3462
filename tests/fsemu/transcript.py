"""Normalised ESL transcripts: what a client saw of one scenario, small enough to commit and diff.

Sans-IO: ``Transcript`` is built from the messages a client received (``add_message``) and the commands it
sent (``add_command``), and written or parsed as text, one line per item::

    > api uuid_audio_stream <A> start ws://<WORKER>/stream mono 8k     a command the client sent
    < api/response "+OK Success\\n"                                      a reply (body as a JSON string)
    ~ A CUSTOM mod_audio_stream::error {"status":"error",...}           an event of leg A (detail, body)
    = A MEDIA_BUG_STOP: Event-Name Core-UUID ...                        header names of its first one
    w 1 close 1000 Normal closure                                       what the worker saw (connection 1)
    # ...                                                               commentary, timings (not compared)

Volatile values are normalised: channel UUIDs become leg labels (``<A>`` the leg the scenario names, ``<B>``
a loopback ``-b`` leg, ``<U1>``... others in order of appearance), worker URLs ``ws://<WORKER>``, and in
``show`` replies the ``created``/``created_epoch``/``hostname`` values. ``compare`` checks commands,
replies and worker lines in order, events per leg in order (the interleaving of two legs' events depends
on FreeSWITCH's threads), and header names (without ``variable_*``: those follow the dialplan).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.fsemu.fixtures import Message, ParsedEvent, parse_json_event, parse_plain_event

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_WORKER_RE = re.compile(r"ws://[^/\s\"]+")
_SHOW_VALUES = (
    (re.compile(r'"((?:b_)?created)":"[^"]+"'), r'"\1":"<DATE>"'),
    (re.compile(r'"((?:b_|call_)?created_epoch)":"\d+"'), r'"\1":"<EPOCH>"'),
    (re.compile(r'"hostname":"[^"]*"'), '"hostname":"<HOST>"'),
)
# The header whose value names the event more precisely (CHANNEL_STATE CS_HANGUP ...).
DETAIL = {
    "CHANNEL_STATE": "Channel-State",
    "CHANNEL_CALLSTATE": "Channel-Call-State",
    "CHANNEL_HANGUP": "Hangup-Cause",
    "CHANNEL_HANGUP_COMPLETE": "Hangup-Cause",
    "CHANNEL_EXECUTE": "Application",
    "CHANNEL_EXECUTE_COMPLETE": "Application",
    "MEDIA_BUG_START": "Media-Bug-Function",
    "MEDIA_BUG_STOP": "Media-Bug-Function",
}


@dataclass(frozen=True)
class Line:
    """One transcript item: kind (``>``, ``<``, ``~``, ``=``, ``w``, ``#``), leg or key, text."""

    kind: str
    key: str
    text: str

    def render(self) -> str:
        """The line as written to a file."""
        if self.kind in (">", "#"):
            return f"{self.kind} {self.text}"
        return f"{self.kind} {self.key} {self.text}"


def event_key(event: ParsedEvent) -> str:
    """``MEDIA_BUG_STOP`` or ``CUSTOM mod_audio_stream::error``."""
    name = event.get("Event-Name") or ""
    return f"{name} {event.get('Event-Subclass')}" if name == "CUSTOM" else name


@dataclass
class Transcript:
    """A normalised transcript; ``names_of`` are the event keys whose header names are recorded."""

    names_of: frozenset[str] = frozenset()
    lines: list[Line] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    _named: set[tuple[str, str]] = field(default_factory=set)

    # -- building ------------------------------------------------------------------------------
    def name_leg(self, uuid: str, label: str) -> None:
        """Call ``uuid`` ``<label>`` from now on."""
        self.labels[uuid] = label

    def normalise(self, text: str) -> str:
        """Replace UUIDs by labels (new ones get ``U<n>``), worker URLs and ``show`` row values."""

        def label(match: re.Match[str]) -> str:
            uuid = match.group(0)
            if uuid not in self.labels:
                self.labels[uuid] = f"U{sum(1 for v in self.labels.values() if v.startswith('U')) + 1}"
            return f"<{self.labels[uuid]}>"

        text = UUID_RE.sub(label, _WORKER_RE.sub("ws://<WORKER>", text))
        for pattern, replacement in _SHOW_VALUES:
            text = pattern.sub(replacement, text)
        return text

    def add_command(self, command: str) -> None:
        """A command the client sent (its first line)."""
        self.lines.append(Line(">", "", self.normalise(command.split("\n", 1)[0])))

    def add_comment(self, text: str) -> None:
        """Commentary (not compared)."""
        self.lines.append(Line("#", "", text))

    def add_worker(self, index: int, seen: Iterable[str]) -> None:
        """What worker connection ``index`` (1-based) observed."""
        self.lines += [Line("w", str(index), self.normalise(item)) for item in seen]

    def add_message(self, msg: Message) -> None:
        """One message the server sent (the greeting and auth reply included)."""
        event = _decode(msg)
        if event is None:
            body = msg.body.decode() if msg.body else (msg.header("Reply-Text") or "")
            self.lines.append(Line("<", msg.content_type, json.dumps(self.normalise(body))))
            return
        self._add_event(event)

    def _add_event(self, event: ParsedEvent) -> None:
        uuid = event.get("Unique-ID")
        if uuid is not None and uuid not in self.labels:
            name = event.get("Channel-Name") or ""
            if name.endswith("-b") and "B" not in self.labels.values():
                self.labels[uuid] = "B"
        leg = self.normalise(uuid).strip("<>") if uuid else "-"
        key = event_key(event)
        header = DETAIL.get(key)
        detail = event.get(header) if header else None
        text = key if detail is None else f"{key} {detail}"
        if event.get("Event-Name") in ("CUSTOM", "BACKGROUND_JOB") and event.body is not None:
            text += " " + self.normalise(event.body).rstrip("\n")
        self.lines.append(Line("~", leg, text))
        if key in self.names_of and (leg, key) not in self._named:
            self._named.add((leg, key))
            names = [n for n in event.names if not n.startswith("variable_")]
            self.lines.append(Line("=", leg, f"{key}: {' '.join(names)}"))

    # -- text ----------------------------------------------------------------------------------
    def render(self, header: Iterable[str] = ()) -> str:
        """The file text: ``header`` lines (as comments), then the lines."""
        out = [f"# {h}" if h else "#" for h in header]
        out += [line.render() for line in self.lines]
        return "\n".join(out) + "\n"

    @classmethod
    def parse(cls, text: str) -> Transcript:
        """Read a rendered transcript (comments dropped)."""
        out = cls()
        for raw in text.splitlines():
            if not raw or raw.startswith("#"):
                continue
            kind, _, rest = raw.partition(" ")
            if kind == ">":
                out.lines.append(Line(">", "", rest))
            else:
                key, _, value = rest.partition(" ")
                out.lines.append(Line(kind, key, value))
        return out

    # -- views ---------------------------------------------------------------------------------
    def of(self, kind: str) -> list[Line]:
        """The lines of one kind, in order."""
        return [line for line in self.lines if line.kind == kind]

    def legs(self) -> dict[str, list[str]]:
        """Event texts per leg, in order."""
        out: dict[str, list[str]] = {}
        for line in self.of("~"):
            out.setdefault(line.key, []).append(line.text)
        return out


def compare(want: Transcript, got: Transcript) -> list[str]:
    """Differences between a recorded transcript and a replayed one (empty: the same)."""
    problems: list[str] = []
    for kind, what in ((">", "commands"), ("<", "replies"), ("w", "worker lines"), ("=", "header names")):
        wanted, seen = [ln.render() for ln in want.of(kind)], [ln.render() for ln in got.of(kind)]
        if wanted != seen:
            problems.append(_first_difference(what, wanted, seen))
    want_legs, got_legs = want.legs(), got.legs()
    for leg in sorted(set(want_legs) | set(got_legs)):
        if want_legs.get(leg, []) != got_legs.get(leg, []):
            problems.append(
                _first_difference(f"events of {leg}", want_legs.get(leg, []), got_legs.get(leg, []))
            )
    return problems


def _first_difference(what: str, want: list[str], got: list[str]) -> str:
    for index, (w, g) in enumerate(zip(want, got, strict=False)):
        if w != g:
            return f"{what} #{index}: want {w!r}, got {g!r}"
    return f"{what}: want {len(want)} ({want[len(got) :][:3]}...), got {len(got)} ({got[len(want) :][:3]}...)"


def _decode(msg: Message) -> ParsedEvent | None:
    if msg.content_type == "text/event-json":
        return parse_json_event(msg.body)
    if msg.content_type == "text/event-plain":
        return parse_plain_event(msg.body)
    return None
