"""Tests for d2lhelpers.seeds: a measurement over seeds, and its spread at each epoch."""

from __future__ import annotations

import pytest

from d2lhelpers.seeds import Spread, per_epoch, spread


def test_spread_keeps_the_values_that_are_there() -> None:
    s = spread([0.7, None, 0.9])
    assert (s.values, s.mean, s.low, s.high) == ((0.7, 0.9), pytest.approx(0.8), 0.7, 0.9)
    assert spread([None]) is None
    assert Spread((0.7, 0.8)).overlaps(Spread((0.8, 0.9)))
    assert not Spread((0.7, 0.75)).overlaps(Spread((0.8, 0.9)))


def test_per_epoch_takes_the_seeds_with_a_value_at_each_epoch() -> None:
    bands = per_epoch([{1: 0.5, 2: 0.7}, {1: 0.6, 2: None, 3: 0.9}, {2: 0.8}])
    assert list(bands) == [1, 2, 3]
    assert bands[1].values == (0.5, 0.6) and bands[2].values == (0.7, 0.8)
    assert bands[3].values == (0.9,)
    assert per_epoch([]) == {}
