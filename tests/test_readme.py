"""Every `nanochat-next` command the README and the docs pages show is one the command line accepts (flags, choices
and value types), so the docs cannot drift from the code; each command's --help runs; the README stays a page a
newcomer reads in minutes and points at nothing a user of the repository does not have."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nanochat_next.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))


def documented_commands(text: str = DOCS) -> list[str]:
    """Command lines in bash blocks and inline code that run nanochat-next (or `-m nanochat_next`)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line for line in block.splitlines() if "nanochat-next " in line or "-m nanochat_next " in line]
    # inline code naming a command with its arguments (a bare `nanochat-next bench` is a reference, not a command)
    lines += [span for span in re.findall(r"`((?:\.venv/bin/)?nanochat-next [^`]+)`", text) if " -" in span]
    commands = []
    for line in lines:
        line = re.sub(r"\[[^\]]*\]", "", line)  # usage notation: [--out DIR] is optional
        for part in re.split(r"&&", line.split("  #")[0]):
            words = shlex.split(part.split(" # ")[0])
            for start, word in enumerate(words):
                if word.endswith("nanochat-next") or word == "nanochat_next":
                    commands.append(shlex.join(words[start + 1:]))
                    break
    return sorted({c for c in commands if c})


COMMANDS = documented_commands()


def test_the_readme_shows_the_main_commands():
    shown = {c.split()[0] for c in documented_commands(README)}
    assert {"train", "sample", "chat", "tok-train", "tok-eval", "doctor", "bench", "export", "sft", "chat-eval",
            "serve"} <= shown, shown


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_parses(command):
    build_parser().parse_args(shlex.split(command))  # exits 2 with one error line on an unknown flag or value


@pytest.mark.parametrize("name", sorted({c.split()[0] for c in COMMANDS}))
def test_every_documented_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    assert "usage: nanochat-next " + name in capsys.readouterr().out


def test_the_readme_is_short_and_points_only_at_what_a_user_has():
    assert len(README.splitlines()) <= 220, "README is the front page: move details to docs/"
    assert "../shared" not in DOCS, "a user of the repository has no ../shared"
    assert README.index("## Notebooks") < README.index("## The pipeline"), "notebooks first: a notebook-first repo"
    for link in re.findall(r"\]\(((?:docs|results|notebooks|colab|clients)/[^)#]+)", README):
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"
