"""The notebooks' exercise checker: a wrong attempt is caught and shown where it differs, a right one passes, a
half-written one that raises does not stop the notebook."""

from __future__ import annotations

import torch

from nanochat_next.exercises import check, same


def reference(rewards: torch.Tensor) -> torch.Tensor:
    return rewards - rewards.mean()


CASES = [torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.ones(8)]


def test_a_right_attempt_passes_on_every_case(capsys):
    assert check(lambda r: r - r.sum() / r.numel(), reference, CASES)  # another formula, the same numbers
    assert "right on all 2 cases" in capsys.readouterr().out


def test_a_wrong_attempt_is_shown_where_it_differs(capsys):
    assert not check(lambda r: r, reference, CASES)
    assert capsys.readouterr().out.strip() == ("not yet: for [1.0, 0.0, 0.0, 1.0] you gave [1.0, 0.0, 0.0, 1.0], "
                                               "expected [0.5, -0.5, -0.5, 0.5]")


def test_tensor_floats_are_shown_rounded_like_python_floats(capsys):
    assert not check(lambda x: x.softmax(-1), lambda x: x, [torch.tensor([2.0, 1.0])])
    out = capsys.readouterr().out.strip()
    assert out == "not yet: for [2.0, 1.0] you gave [0.731059, 0.268941], expected [2.0, 1.0]"


def test_an_attempt_that_raises_is_reported_not_raised(capsys):
    def unfinished(r):
        raise NotImplementedError("TODO")

    assert not check(unfinished, reference, CASES)
    assert "raised NotImplementedError: TODO" in capsys.readouterr().out


def test_tuples_are_arguments_and_shapes_and_lengths_must_match(capsys):
    assert check(lambda a, b: a + b, lambda a, b: b + a, [(1, 2), (0.1, 0.2)])
    assert not same(torch.zeros(2, 1), torch.zeros(2))  # broadcasting equal, but another shape
    assert not same([1, 2], [1, 2, 3]) and not same("1", 1.0)
    assert same(0.1 + 0.2, 0.3) and not same(0.31, 0.3)
    assert same([1.0, [2, 3.0000001]], [1, [2, 3]])


def test_a_long_case_is_cut_to_a_readable_line(capsys):
    assert not check(lambda docs: 1.0, lambda docs: 2.0, [["a long document " * 20] * 5])
    line = capsys.readouterr().out.strip()
    assert len(line) < 200 and "more characters)" in line and line.endswith("you gave 1.0, expected 2.0")


def test_a_large_tensor_is_shown_by_its_shape_and_first_difference(capsys):
    """A (2, 3, 4) answer printed in full would be unreadable: the case shows its shape, the message the first
    place where the values differ, both values and how many places differ."""
    def reference(x):
        return x + (torch.arange(x.numel()).view_as(x) % 7 == 5).float()  # differs at flat 5, 12 and 19

    assert not check(lambda x: x.clone(), reference, [torch.zeros(2, 3, 4)])
    out = capsys.readouterr().out.strip()
    assert out == ("not yet: for tensor(2, 3, 4) your tensor differs at [0, 1, 1] you gave 0.0, expected 1.0 "
                   "(3 of 24 values differ)")
    assert not check(lambda x: x.reshape(4, 6), lambda x: x, [torch.zeros(2, 3, 4)])  # another shape: both by shape
    out = capsys.readouterr().out.strip()
    assert out == "not yet: for tensor(2, 3, 4) you gave tensor(4, 6), expected tensor(2, 3, 4)"
    assert check(lambda x: x * 1.0, lambda x: x, [torch.ones(40)])
