"""``switchyard render``: the stock servers' configuration (freeswitch/conf, janus/conf) from the settings.

The templates are ``<root>/freeswitch/conf/**.j2`` and ``<root>/janus/conf/*.j2``. In a source checkout the
root is the repository itself (its top-level ``freeswitch/conf`` and ``janus/conf``, what an operator reads
and edits); an installed package carries a copy under ``controller/render/templates`` (the image build puts
it there). ``switchyard render --templates ROOT`` names another root.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

__all__ = ["SERVERS", "default_templates", "template_dir", "template_environment"]

SERVERS = ("freeswitch", "janus")
_PACKAGED = Path(__file__).parent / "templates"
_CHECKOUT = Path(__file__).resolve().parents[2]


def default_templates() -> Path:
    """The packaged copy of the templates when there is one, else the source checkout's."""
    return _PACKAGED if (_PACKAGED / "freeswitch" / "conf").is_dir() else _CHECKOUT


def template_dir(server: str, root: Path | None = None) -> Path:
    """``<root>/<server>/conf``: the templates of one server."""
    return (root or default_templates()) / server / "conf"


def template_environment(server: str, *, autoescape: bool, root: Path | None = None) -> jinja2.Environment:
    """The jinja2 environment of one server's templates: undefined names fail, block tags leave no blank
    lines, files keep their final newline; ``autoescape`` for XML (FreeSWITCH), not for libconfig (Janus).

    Raises:
        ValueError: the directory holds no templates.
    """
    directory = template_dir(server, root)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no {server} templates there (--templates names their root)")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=autoescape,
    )
