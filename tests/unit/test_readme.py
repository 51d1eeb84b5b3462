"""The README's commands are the ones that exist and that CI runs: its two first commands, its quick start
(which .ci/compose-tier runs: `make up` on a clone with no .env, then a desk phone calls the agent), and
every `make` target and deploy/ script it names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
QUICK_START = ["git clone <this repository> switchyard && cd switchyard", "make up"]


def _blocks(text: str) -> list[list[str]]:
    """The commands of each ```sh block: its lines without comments and blank lines."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    return [[c for line in b.splitlines() if (c := line.split("#", 1)[0].strip())] for b in blocks]


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no section '## {title}'"
    return match.group(1)


def _targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][a-zA-Z_-]*):", makefile, flags=re.M))


def _commands(path: Path) -> list[str]:
    """The non-comment lines of a shell script."""
    return [line.strip() for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def test_the_readme_starts_with_make_up_and_make_test() -> None:
    first = _blocks(README)[0]
    assert first == ["make up", "make test"]
    assert README.index("```sh") < README.index("\n## "), "the two commands come before any section"


def test_the_quick_start_is_what_ci_runs() -> None:
    assert _blocks(_section("Quick start"))[0] == QUICK_START
    tier = _commands(ROOT / ".ci" / "compose-tier")
    assert any(line.startswith('env "${up_env[@]}" make up ') for line in tier), "CI does not run make up"
    assert any("rm .env" in line for line in tier), "CI's make up does not start from a missing .env"
    assert any("make test" in line for line in _commands(ROOT / ".ci" / "run"))


def test_every_make_target_the_readme_names_exists() -> None:
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    named |= {c.split()[1] for block in _blocks(README) for c in block if c.startswith("make ")}
    assert named, "the README names no make target"
    assert named <= _targets(), f"no such target: {sorted(named - _targets())}"


def test_every_deploy_script_the_readme_names_exists() -> None:
    named = set(re.findall(r"\bdeploy/[a-z-]+(?=[`\s)])", README))
    assert {"deploy/make-env", "deploy/check-env", "deploy/freeswitch-image"} <= named
    named.discard("deploy/tls")  # the operator's certificate directory: made by deploy/tls-cert, gitignored
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert not missing, f"the README names scripts that are not there: {missing}"
