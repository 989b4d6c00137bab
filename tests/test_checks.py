"""The shared argument checks: each names the argument and the value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from d2lhelpers.checks import (
    finite,
    finite_range,
    int_at_least,
    non_negative_finite,
    non_negative_int,
    one_line,
    positive_finite,
    positive_int,
)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", None, True, math.nan])
def test_positive_int_rejects(value) -> None:
    with pytest.raises(ValueError, match=rf"^batch_size must be an integer.*got {value!r}\.$"):
        positive_int("batch_size", value)


def test_positive_int_accepts_integers_and_numpy_integers() -> None:
    assert positive_int("n", 3) == 3
    assert positive_int("n", np.int64(4)) == 4
    assert int_at_least("n", 2, 2) == 2
    assert non_negative_int("n", 0) == 0
    with pytest.raises(ValueError, match="at least 2, got 1"):
        int_at_least("n", 1, 2)


@pytest.mark.parametrize("value", [0, -1e-3, math.nan, math.inf, -math.inf, "0.1", None, False])
def test_positive_finite_rejects(value) -> None:
    with pytest.raises(ValueError, match=rf"^learning_rate must be .*got {value!r}\.$"):
        positive_finite("learning_rate", value)


def test_finite_checks_accept_and_convert() -> None:
    assert finite("mean", -3) == -3.0 and isinstance(finite("mean", np.float32(2)), float)
    for bad in (math.nan, math.inf, "0", None, True):
        with pytest.raises(ValueError, match=rf"^mean must be a .*number, got {bad!r}\.$"):
            finite("mean", bad)
    assert positive_finite("lr", np.float32(0.5)) == 0.5
    assert non_negative_finite("wd", 0) == 0.0
    with pytest.raises(ValueError, match="wd must be a finite number >= 0, got -1"):
        non_negative_finite("wd", -1)
    with pytest.raises(ValueError, match="wd must be a finite number, got nan"):
        non_negative_finite("wd", math.nan)


@pytest.mark.parametrize("value", [(0.5, 0.1), (0.0, 1.0), (0.1, math.inf), (1,), 3, None])
def test_finite_range_rejects(value) -> None:
    with pytest.raises(ValueError, match="scale must"):
        finite_range("scale", value)


def test_finite_range_accepts() -> None:
    assert finite_range("scale", [0.08, 1]) == (0.08, 1.0)


def test_one_line_collapses_an_error_with_or_without_its_type() -> None:
    err = RuntimeError("first line\n  second\tline ")
    assert one_line(err) == "RuntimeError: first line second line"
    assert one_line(err, with_type=False) == "first line second line"
    assert (
        one_line(KeyboardInterrupt()) == one_line(KeyboardInterrupt(), False) == "KeyboardInterrupt"
    )
