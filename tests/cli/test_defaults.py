"""Defaults are written once: every flag that sets a run-config field has no default of its own (argparse.SUPPRESS),
its help shows the dataclass's default, and no help text repeats a default's value as a literal (a second copy
that would go stale). The device and dtype lists are the runtime's."""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, fields

import pytest

from nanochat_next import runtime
from nanochat_next.chat.sft import SFTSettings
from nanochat_next.cli import args as cli_args
from nanochat_next.cli.main import build_parser
from nanochat_next.scalar.config import ScalarRun
from nanochat_next.train.config import TensorRun

COMMANDS = {"train": (TensorRun, ScalarRun), "sft": (SFTSettings,)}


def subparser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def config_actions(command: str):
    classes = COMMANDS[command]
    names = {f.name for cls in classes for f in fields(cls)}
    return [(a, classes) for a in subparser(command)._actions if a.dest in names]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_config_flag_takes_its_default_from_the_dataclass(command):
    actions = config_actions(command)
    assert len(actions) >= 10, "the test must see the config flags"
    for action, classes in actions:
        assert action.default is argparse.SUPPRESS, f"{action.option_strings[0]} has a default of its own"
        defaults = [f.default for cls in classes for f in fields(cls) if f.name == action.dest
                    and f.default is not MISSING]
        shown = action.help.rsplit("(default: ", 1)
        assert len(shown) == 2, f"{action.option_strings[0]}'s help does not show its default"
        for value in defaults:
            if value is None:
                continue
            assert str(value) in shown[1], f"{action.option_strings[0]}: help says {shown[1]!r}, dataclass {value!r}"
            if isinstance(value, float):  # a number written into the text as well is a second copy of the default
                assert not re.search(rf"(?<![\d.]){re.escape(str(value))}(?![\d])", shown[0]), \
                    f"{action.option_strings[0]}'s help repeats its default {value} in its text"


def test_the_rule_catches_a_flag_with_its_own_default():
    parser = argparse.ArgumentParser()
    parser.add_argument("--matrix-lr", type=float, default=0.02, help="Muon LR (nanochat's SFT: 0.02)")
    action = parser._actions[-1]
    assert action.default is not argparse.SUPPRESS and "(default: " not in action.help


def test_one_device_list_and_one_dtype_list():
    assert cli_args.DEVICES is runtime.DEVICE_CHOICES
    train = {a.dest: a for a in subparser("train")._actions}
    assert tuple(train["device"].choices) == runtime.DEVICE_CHOICES
    assert tuple(train["dtype"].choices) == runtime.DTYPE_CHOICES
    assert tuple(train["muon_dtype"].choices) == runtime.MUON_DTYPE_CHOICES
    assert tuple(subparser("sft")._option_string_actions["--device"].choices) == runtime.DEVICE_CHOICES
