"""``switchyard render``: the stock servers' configuration (freeswitch/conf, janus/conf) from the settings."""

from __future__ import annotations

from pathlib import Path

import jinja2

__all__ = ["template_environment"]


def template_environment(server: str, *, autoescape: bool) -> jinja2.Environment:
    """The jinja2 environment of ``templates/<server>``: undefined names fail, block tags leave no blank
    lines, files keep their final newline; ``autoescape`` for XML (FreeSWITCH), not for libconfig (Janus)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / server),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=autoescape,
    )
