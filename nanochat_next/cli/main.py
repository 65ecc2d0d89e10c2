"""The ``nanochat-next`` command line (also ``python -m nanochat_next``): the parser and the error rule.

Every command turns bad input or an unusable environment into ONE line on stderr, ``error: ...``, and
exit code 2 (argparse's errors included); Ctrl-C is exit 130. One module per command family registers
its subcommands: ``tokenizer_cmds``, ``train_cmds``, ``chat_cmds``, ``generate_cmds``, ``model_cmds``,
``system_cmds``.
"""

from __future__ import annotations

import argparse
import sys

from nanochat_next import __version__
from nanochat_next.cli import chat_cmds, generate_cmds, model_cmds, system_cmds, tokenizer_cmds, train_cmds
from nanochat_next.cli.args import HelpFormatter, Parser, add_threads_flag
from nanochat_next.errors import UserError
from nanochat_next.runtime import set_threads


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nanochat-next",
                    description="Train tiny GPT language models from scratch, and compare them with "
                                "karpathy/nanochat. The main job: `nanochat-next train` (nanochat's GPT on "
                                "tinyshakespeare), then `nanochat-next sample`.",
                    epilog="Run `nanochat-next COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = HelpFormatter
    for family in (tokenizer_cmds, train_cmds, chat_cmds, generate_cmds, model_cmds, system_cmds):
        family.register(sub, fmt)
    for command in sub.choices.values():  # every command computes on the CPU at some point
        add_threads_flag(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        set_threads(getattr(args, "threads", None))
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
