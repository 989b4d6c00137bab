"""The chapter's settings per data source, and the short run that checks use."""

from __future__ import annotations

import pytest

from d2lhelpers.chapter import CHAPTER_SETTINGS, SEEDS, chapter_settings
from d2lhelpers.environment import SHORT_RUN_ENV


def test_full_settings_have_three_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHORT_RUN_ENV, raising=False)
    settings = chapter_settings("real")
    assert settings == {**CHAPTER_SETTINGS["real"], "seeds": SEEDS, "short_run": False}
    assert len(settings["seeds"]) >= 3
    assert settings["finetune_lr"] == pytest.approx(5e-5 * 128)  # d2l's rate, mean loss


def test_short_run_is_one_epoch_and_one_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHORT_RUN_ENV, "1")
    settings = chapter_settings("standin")
    assert (settings["num_epochs"], settings["seeds"], settings["short_run"]) == (1, (0,), True)
    assert settings["finetune_lr"] == CHAPTER_SETTINGS["standin"]["finetune_lr"]
    monkeypatch.setenv(SHORT_RUN_ENV, "0")
    assert chapter_settings("standin")["short_run"] is False


def test_a_bad_short_run_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SHORT_RUN_ENV, "yes")
    with pytest.raises(ValueError, match=f"{SHORT_RUN_ENV} is 'yes'"):
        chapter_settings("real")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'imagenet'"):
        chapter_settings("imagenet")
