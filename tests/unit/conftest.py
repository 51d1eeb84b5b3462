"""Fixtures shared by the unit tests of the FreeSWITCH renderer (``test_render_freeswitch_*``): the tree
rendered from ``fsrenderkit.SETTINGS`` and its parsed document, built once per module that asks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.unit.fsrenderkit import _document, _render


@pytest.fixture(scope="module")
def tree() -> dict[str, str]:
    return _render()


@pytest.fixture(scope="module")
def root(tree: dict[str, str]) -> ET.Element:
    return _document(tree)[0]
