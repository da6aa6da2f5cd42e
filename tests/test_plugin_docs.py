"""The docs the plugin's users read: every error message has a troubleshooting entry, every
plugin option is documented, and the docs link to files that exist."""

from __future__ import annotations

import re

import pytest

from alembic_cleandb.testing.plugin import OPTIONS
from conftest import ROOT

DOCS = ROOT / "docs"
SRC = ROOT / "src" / "alembic_cleandb"
BUILTIN = {"AttributeError", "TypeError", "ValueError", "KeyError", "NotImplementedError"}
# The first string literal of a raise / usage error / exit in the library's sources.
RAISE = re.compile(
    r"(?P<kind>\w*Error|SystemExit|pytest\.exit|MESSAGE\s*=\s*format)\(\s*"
    r"f?(?P<q>['\"])(?P<text>.*?)(?P=q)",
    re.S,
)


def _words(text: str) -> str:
    return " ".join(re.sub(r"[`'\"*\\|:;,.]", " ", text).lower().split())


def messages() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for match in RAISE.finditer(path.read_text()):
            if match.group("kind") in BUILTIN:  # Python's own protocol errors, not ours
                continue
            # The longest piece between placeholders, without the "alembic-cleandb:" prefix.
            pieces = re.split(r"\{[^}]*\}|%[sIL]", match.group("text"))
            pieces = [re.sub(r"^alembic-cleandb:?", "", p).strip(" .:;,()") for p in pieces]
            text = max(pieces, key=lambda p: len(p.split()))
            if len(text.split()) >= 2:
                found.append(" ".join(text.split()[:5]))
    return sorted(set(found))


def test_messages_are_found() -> None:
    assert len(messages()) > 15


@pytest.mark.parametrize("message", messages())
def test_troubleshooting_has_every_error_message(message: str) -> None:
    assert _words(message) in _words((DOCS / "troubleshooting.md").read_text()), message


def test_every_option_is_documented() -> None:
    text = (DOCS / "pytest-plugin.md").read_text()
    for option in OPTIONS:
        assert f"`{option.name}" in text and f"`{option.flag}" in text, option.name


def test_relative_links_resolve() -> None:
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
