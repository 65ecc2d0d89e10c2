"""Every `nanochat-next` command the README shows is one the command line accepts (flags, choices and value
types), so the docs cannot drift from the code; each command's --help runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nanochat_next.cli.main import build_parser, main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def documented_commands() -> list[str]:
    """Command lines in the README's bash blocks and inline code that run nanochat-next (or `-m nanochat_next`)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        lines += [line for line in block.splitlines() if "nanochat-next " in line or "-m nanochat_next " in line]
    # inline code naming a command with its arguments (a bare `nanochat-next bench` is a reference, not a command)
    lines += [span for span in re.findall(r"`((?:\.venv/bin/)?nanochat-next [^`]+)`", README) if " -" in span]
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
    shown = {c.split()[0] for c in COMMANDS}
    assert {"train", "sample", "chat", "tok-train", "tok-eval", "doctor", "bench", "export", "sft", "chat-eval",
            "serve"} <= shown, shown


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_parses(command):
    build_parser().parse_args(shlex.split(command))  # exits 2 with one error line on an unknown flag or value


@pytest.mark.parametrize("name", sorted({c.split()[0] for c in COMMANDS}))
def test_every_documented_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    assert "usage: nanochat-next " + name in capsys.readouterr().out
