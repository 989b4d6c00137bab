# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Tests for d2lhelpers.book.plot: history curves, image grids and the live plot outside IPython."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from d2lhelpers.book import plot
from d2lhelpers.book.plot import LivePlot, plot_histories, plot_seed_curves, show_images
from d2lhelpers.train import EpochStats, History


def history(label: str, epochs: int, status: str = "ok", loss: float = 0.9) -> History:
    h = History(label, "cpu", "fp32", {})
    for i in range(1, epochs + 1):
        h.epochs.append(EpochStats(i, loss / i, 0.5 + 0.1 * i, 0.4 + 0.1 * i, 100.0, 1.0))
    if status == "diverged":
        h.status, h.diverged_at = "diverged", (epochs + 1, 3)
    elif status != "ok":
        h.status = status
    return h


def test_plot_histories_puts_loss_and_accuracies_on_their_own_axes() -> None:
    fig = plot_histories([history("a", 3), history("b", 2)], title="two runs")
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 + 1  # a loss per run, and the loss of guessing
    assert len(acc_ax.lines) == 4
    assert loss_ax.lines[0].get_xdata().tolist() == [1, 2, 3]
    assert loss_ax.lines[0].get_ydata().tolist() == pytest.approx([0.9, 0.45, 0.3])
    assert list(loss_ax.lines[-1].get_ydata()) == pytest.approx([np.log(2)] * 2)
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == [
        "a：训练损失",
        "b：训练损失",
        "随机猜测的损失",
    ]
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == [
        "a：训练精度",
        "a：测试精度",
        "b：训练精度",
        "b：测试精度",
    ]
    assert acc_ax.get_ylim() == (0, 1)
    assert fig.get_suptitle() == "two runs"
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("训练损失", "精度")
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "迭代周期"
    assert len(loss_ax.texts) == 0  # no annotation for runs that ended normally
    assert loss_ax.lines[0].get_color() != loss_ax.lines[1].get_color()


def test_one_history_is_labelled_by_its_curves_alone() -> None:
    fig = plot_histories([history("微调", 2)])
    names = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert names == ["训练精度", "测试精度"]


def test_plot_histories_y_axis_fits_a_large_loss() -> None:
    fig = plot_histories([history("big", 2, loss=3.0)])
    assert fig.axes[0].get_ylim()[1] >= 3.0


def test_plot_histories_annotates_diverged_run() -> None:
    fig = plot_histories([history("ok", 2), history("bad", 1, status="diverged")])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["在第 2 个迭代周期第 3 个批量发散"]


def test_plot_histories_without_epochs_has_no_legend() -> None:
    fig = plot_histories([history("empty", 0, status="diverged")])
    ax = fig.axes[0]
    assert ax.get_legend() is None
    assert [t.get_text() for t in ax.texts] == ["在第 1 个迭代周期第 3 个批量发散"]


def test_show_images_grid_from_tensors_and_pil() -> None:
    images = [
        torch.rand(3, 10, 12),
        torch.rand(3, 10, 12),
        Image.new("RGB", (12, 10), (255, 0, 0)),
        np.zeros((10, 12, 3), np.uint8),
    ]
    fig = show_images(images, 2, 3, titles=["a", "b", "c", "d"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    shown = [ax.images[0].get_array().shape for ax in fig.axes if ax.images]
    assert shown == [(10, 12, 3)] * 4  # CHW tensors became HWC
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d", "", ""]
    assert all(not ax.axison for ax in fig.axes)
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), images[0].permute(1, 2, 0).numpy()
    )


def test_live_plot_outside_ipython_does_nothing() -> None:
    assert plot._notebook_display() is None
    live = LivePlot("title")
    assert live(history("a", 1)) is None
    assert live(history("a", 2)) is None
    assert live._handle is None


def test_live_plot_displays_then_updates(monkeypatch) -> None:
    calls = []

    class Handle:
        def update(self, fig) -> None:
            calls.append(("update", fig))

    def display(fig, display_id=False):
        calls.append(("display", fig, display_id))
        return Handle()

    monkeypatch.setattr(plot, "_notebook_display", lambda: display)
    live = LivePlot("live")
    live(history("a", 1))
    live(history("a", 2))
    assert [c[0] for c in calls] == ["display", "update"]
    assert calls[0][2] is True
    assert all(isinstance(c[1], Figure) for c in calls)
    assert len(calls[1][1].axes[0].lines[0].get_xdata()) == 2


def test_plot_seed_curves_draws_the_mean_and_the_range_of_the_seeds() -> None:
    a, b = history("", 3, loss=0.9), history("", 3, loss=0.6)
    fig = plot_seed_curves({"微调": [a, b], "从头训练": [history("", 2)]})
    loss_ax, acc_ax = fig.axes
    mean_loss = loss_ax.lines[0].get_ydata()
    expected = [(0.9 / i + 0.6 / i) / 2 for i in (1, 2, 3)]
    assert list(mean_loss) == pytest.approx(expected)
    assert list(acc_ax.lines[1].get_xdata()) == [1, 2]  # the second model's two epochs
    assert len(loss_ax.collections) == 2  # one band per model
    band = loss_ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.6 / 3) and band.max() == pytest.approx(0.9)
    assert all(float(t).is_integer() for t in acc_ax.get_xticks())
    labels = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert labels == ["微调（2 个种子）", "从头训练（1 个种子）", "随机猜测"]
