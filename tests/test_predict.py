# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Predictions after training: eval mode and restored modes, the test transform, summaries,
the short reading of the mistakes, and figures that render every glyph in the shipped font."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from io import BytesIO

import pytest
import torch
import torch.nn.functional as F
from matplotlib import ft2font
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import nn

from d2lhelpers.book import fonts
from d2lhelpers.book.labels import class_label
from d2lhelpers.book.predict_plots import confusion_figure, mistakes_figure, prediction_grid
from d2lhelpers.book.readings import describe_mistakes
from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, DecodedImages, Recipe
from d2lhelpers.precision import choose_precision
from d2lhelpers.predict import (
    Predictions,
    confusion_matrix,
    mistake_counts,
    per_class_accuracy,
    predict,
    spread_indices,
    top_losses,
)

RECIPE = Recipe(32)  # stored_size 37


class RedNet(nn.Module):
    """Logits (red - blue, blue - red) of the mean colour, through BatchNorm and Dropout, which
    behave differently in training mode; records the mode of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]]))
            self.fc.bias.zero_()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.fc(self.drop(self.norm(x.mean((2, 3)))))


def solid_images(colours: list[tuple[int, int, int]], labels: list[int], side: int = 37):
    pixels = torch.tensor(colours, dtype=torch.uint8)[:, :, None, None].expand(-1, -1, side, side)
    paths = [f"{i}.png" for i in range(len(colours))]
    return DecodedImages(pixels.contiguous(), torch.tensor(labels), paths, HOTDOG_CLASSES)


@pytest.fixture
def images() -> DecodedImages:
    """Six images: red ones look like hot dogs to RedNet, blue ones do not; two are wrong."""
    colours = [(250, 0, 0), (200, 0, 50), (0, 0, 250), (0, 0, 250), (250, 0, 0), (60, 0, 40)]
    return solid_images(colours, [0, 0, 0, 1, 1, 1])


def made_up(labels: list[int], predicted: list[int], confidence: list[float]) -> Predictions:
    """Two-class predictions with the given predicted class and its probability."""
    p = torch.tensor(confidence)
    pred = torch.tensor(predicted)
    probs = torch.stack([torch.where(pred == 0, p, 1 - p), torch.where(pred == 0, 1 - p, p)], 1)
    labels_t = torch.tensor(labels)
    losses = -probs.gather(1, labels_t[:, None]).squeeze(1).log()
    return Predictions(probs, labels_t, pred, losses, HOTDOG_CLASSES)


def test_predict_matches_the_test_loader_and_cross_entropy(images: DecodedImages) -> None:
    net = RedNet().eval()
    pred = predict(net, images, RECIPE)
    x, y = next(iter(BatchLoader(images, 8, RECIPE, train=False)))
    with choose_precision(torch.device("cpu")).autocast():  # bf16 on CPUs that have it
        logits = net(x).detach().float()
    assert torch.allclose(pred.probabilities, logits.softmax(1), atol=1e-6)
    assert torch.allclose(pred.probabilities.sum(1), torch.ones(6))
    assert torch.equal(pred.predicted, logits.argmax(1)) and torch.equal(pred.labels, y)
    assert torch.allclose(pred.losses, F.cross_entropy(logits, y, reduction="none"), atol=1e-6)
    assert pred.predicted.tolist() == [0, 0, 1, 1, 0, 0]
    assert pred.correct.tolist() == [True, True, False, True, False, False]
    assert pred.accuracy == pytest.approx(3 / 6)
    assert pred.probabilities.dtype == torch.float32 and not pred.probabilities.requires_grad


def test_predict_runs_in_eval_mode_and_restores_every_mode(images: DecodedImages) -> None:
    net = RedNet().train()
    net.norm.eval()  # a frozen BatchNorm inside a training net stays frozen
    stats = net.norm.running_mean.clone()
    first = predict(net, images, RECIPE, batch_size=4)
    assert net.modes == [False, False]  # two batches, both in eval mode
    assert net.training and not net.norm.training and net.drop.training and net.fc.training
    assert torch.equal(net.norm.running_mean, stats)
    again = predict(net, images, RECIPE, batch_size=256)  # eval: Dropout off, deterministic
    assert torch.allclose(first.probabilities, again.probabilities, atol=1e-6)
    net.eval()
    predict(net, images, RECIPE)
    assert not any(m.training for m in net.modules())


def test_predict_restores_modes_when_the_net_fails(images: DecodedImages) -> None:
    net = RedNet().train()
    net.forward = lambda x: (_ for _ in ()).throw(RuntimeError("out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        predict(net, images, RECIPE)
    assert all(m.training for m in net.modules())


def test_a_training_resolution_split_is_squashed_to_the_test_size() -> None:
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (4, 3, 74, 74), dtype=torch.uint8)
    big = DecodedImages(pixels, torch.tensor([0, 1, 0, 1]), ["a", "b", "c", "d"], HOTDOG_CLASSES)
    net = RedNet().eval()
    direct = predict(net, big, RECIPE).probabilities
    assert torch.allclose(direct, predict(net, big.resized(37), RECIPE).probabilities)


def test_predict_refuses_another_device_and_a_wrong_head(images: DecodedImages) -> None:
    with pytest.raises(ValueError, match=r"on cpu, not on cuda.*net\.to\(device\)"):
        predict(RedNet(), images, RECIPE, device="cuda")
    three = RedNet()
    three.fc = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="3 outputs but the images have 2 classes"):
        predict(three, images, RECIPE)
    with pytest.raises(ValueError, match="batch_size"):
        predict(RedNet(), images, RECIPE, batch_size=0)


def test_confusion_matrix_per_class_accuracy_and_mistake_counts() -> None:
    pred = made_up([0, 0, 0, 1, 1], [0, 1, 1, 1, 0], [0.9, 0.6, 0.8, 0.7, 0.55])
    assert confusion_matrix(pred).tolist() == [[1, 2], [1, 1]]
    assert per_class_accuracy(pred) == {"hotdog": pytest.approx(1 / 3), "not-hotdog": 0.5}
    assert mistake_counts(pred) == {("hotdog", "not-hotdog"): 2, ("not-hotdog", "hotdog"): 1}
    only_hotdogs = made_up([0, 0], [0, 1], [0.9, 0.8])
    accuracy = per_class_accuracy(only_hotdogs)
    assert accuracy["hotdog"] == 0.5 and accuracy["not-hotdog"] != accuracy["not-hotdog"]  # NaN


def test_top_losses_orders_by_loss_and_can_keep_mistakes_only() -> None:
    # losses: right 0.9 -> 0.11, wrong 0.6 -> 0.92, wrong 0.8 -> 1.61, right 0.55 -> 0.60
    pred = made_up([0, 0, 0, 1], [0, 1, 1, 1], [0.9, 0.6, 0.8, 0.55])
    assert top_losses(pred, 3).tolist() == [2, 1, 3]
    assert top_losses(pred, 10).tolist() == [2, 1, 3, 0]
    assert top_losses(pred, 10, mistakes_only=True).tolist() == [2, 1]
    assert top_losses(made_up([0], [0], [0.9]), 3, mistakes_only=True).tolist() == []
    with pytest.raises(ValueError, match="k must be"):
        top_losses(pred, 0)


def test_describe_mistakes_counts_each_kind() -> None:
    pred = made_up([0, 0, 0, 0, 1, 1], [0, 1, 1, 0, 1, 0], [0.9] * 6)
    assert describe_mistakes(pred) == (
        "共 6 张图像，分错 3 张：热狗被判为非热狗 2 张（占热狗的 50.0%），"
        "非热狗被判为热狗 1 张（占非热狗的 50.0%）。"
    )
    one_kind = made_up([0, 1], [0, 0], [0.9, 0.7])
    assert (
        describe_mistakes(one_kind)
        == "共 2 张图像，分错 1 张：非热狗被判为热狗 1 张（占非热狗的 100.0%）。"
    )
    assert describe_mistakes(made_up([0], [0], [0.9])) == "共 1 张图像，分错 0 张。"


def test_class_labels_and_spread_indices() -> None:
    assert [class_label(c) for c in (*HOTDOG_CLASSES, "cat")] == ["热狗", "非热狗", "cat"]
    assert spread_indices(4, 10).tolist() == [0, 3, 6, 9]
    assert spread_indices(8, 3).tolist() == [0, 1, 2]


# Figures: every glyph in the shipped font (as tests/test_fonts.py checks the others).


def strict_render(draw: Callable[[], Figure], caplog: pytest.LogCaptureFixture) -> Figure:
    """Draw and render with every warning an error (a missing glyph warns); no font complaint."""
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        fig = draw()
        fig.savefig(BytesIO(), format="png", dpi=40)
    assert [r for r in caplog.records if r.name.startswith("matplotlib.font_manager")] == []
    return fig


def assert_in_shipped_font(fig: Figure) -> None:
    """Every character of the figure's text has a glyph in the shipped font itself."""
    charmap = ft2font.FT2Font(str(fonts.FONT_PATH)).get_charmap()
    text = "".join(t.get_text() for t in texts(fig))
    missing = sorted({c for c in text if not c.isspace() and ord(c) not in charmap})
    assert missing == [], f"not in the shipped font: {missing}"


def texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


def chinese_texts(fig: Figure) -> list[Text]:
    return [t for t in texts(fig) if any("\u3000" <= c <= "\u9fff" for c in t.get_text())]


@pytest.fixture
def two_models(images: DecodedImages) -> dict[str, Predictions]:
    red = predict(RedNet().eval(), images, RECIPE)
    blue_net = RedNet().eval()
    with torch.no_grad():
        blue_net.fc.weight.neg_()
    return {"微调": red, "从头训练": predict(blue_net, images, RECIPE)}


def test_prediction_grid(
    images: DecodedImages, two_models: dict[str, Predictions], caplog: pytest.LogCaptureFixture
) -> None:
    fig = strict_render(lambda: prediction_grid(images, two_models, n=4), caplog)
    axes = fig.get_axes()
    assert len(axes) == 2 * 4
    index = spread_indices(4, 6).tolist()
    red = two_models["微调"]
    for ax, i in zip(axes[:4], index, strict=True):
        title = ax.title.get_text()
        right = bool(red.correct[i])
        assert title.startswith("对：" if right else "错：")
        assert class_label(HOTDOG_CLASSES[int(red.predicted[i])]) in title
        assert f"{red.confidence[i].item():.0%}" in title
        assert ax.title.get_color() == ("#2e7d32" if right else "#c62828")
    assert axes[0].get_ylabel() == "微调\n精度 50.0%" and axes[4].get_ylabel().startswith(
        "从头训练"
    )
    assert {t.get_fontfamily()[0] for t in chinese_texts(fig)} == {fonts.FAMILY}
    assert_in_shipped_font(fig)
    shown = axes[0].get_images()[0].get_array()
    assert shown.shape == (37, 37, 3)  # the full stored square
    assert list(shown[0, 0]) == [250, 0, 0]


def test_prediction_grid_with_chosen_images_and_checks(
    images: DecodedImages, two_models: dict[str, Predictions], caplog: pytest.LogCaptureFixture
) -> None:
    fig = strict_render(lambda: prediction_grid(images, two_models, index=[5, 2]), caplog)
    assert len(fig.get_axes()) == 4
    assert fig.get_axes()[0].title.get_text().startswith("错：热狗")
    with pytest.raises(ValueError, match="not of these 3 images"):
        prediction_grid(images.subset(torch.arange(3)), two_models)
    with pytest.raises(ValueError, match="empty"):
        prediction_grid(images, {})


def test_mistakes_figure(
    images: DecodedImages, two_models: dict[str, Predictions], caplog: pytest.LogCaptureFixture
) -> None:
    red = two_models["微调"]
    fig = strict_render(lambda: mistakes_figure(images, red, k=8, cols=2), caplog)
    shown = [ax for ax in fig.get_axes() if ax.get_images()]
    wrong = top_losses(red, 8, mistakes_only=True).tolist()
    assert len(shown) == len(wrong) == 3
    for ax, i in zip(shown, wrong, strict=True):
        true = class_label(HOTDOG_CLASSES[int(red.labels[i])])
        guess = class_label(HOTDOG_CLASSES[int(red.predicted[i])])
        assert ax.title.get_text() == f"真实：{true}\n预测：{guess} {red.confidence[i].item():.0%}"
    losses = [red.losses[i].item() for i in wrong]
    assert losses == sorted(losses, reverse=True)
    assert {t.get_fontfamily()[0] for t in chinese_texts(fig)} == {fonts.FAMILY}
    assert_in_shipped_font(fig)


def test_mistakes_figure_without_mistakes(
    images: DecodedImages, caplog: pytest.LogCaptureFixture
) -> None:
    perfect = made_up(images.labels.tolist(), images.labels.tolist(), [0.9] * 6)
    fig = strict_render(lambda: mistakes_figure(images, perfect), caplog)
    assert [t.get_text() for t in texts(fig)] == ["没有分错的图像。"]
    assert_in_shipped_font(fig)


def test_confusion_figure(
    two_models: dict[str, Predictions], caplog: pytest.LogCaptureFixture
) -> None:
    fig = strict_render(lambda: confusion_figure(two_models), caplog)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax, (name, pred) in zip(axes, two_models.items(), strict=True):
        assert ax.get_xlabel() == "预测类别" and ax.get_ylabel() == "真实类别"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["热狗", "非热狗"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["热狗", "非热狗"]
        cells = [t.get_text() for t in ax.texts]
        assert cells == [str(c) for c in confusion_matrix(pred).flatten().tolist()]
        assert ax.get_title() == f"{name}（精度 {pred.accuracy:.1%}）"
    assert {t.get_fontfamily()[0] for t in chinese_texts(fig)} == {fonts.FAMILY}
    assert_in_shipped_font(fig)


def test_a_check_mark_is_not_in_the_shipped_font(caplog: pytest.LogCaptureFixture) -> None:
    """Why the figures say 对/错: the shipped font has no ✓ (matplotlib would draw it from
    another font, or as a box where none has it), and the check of the figures catches it."""

    @fonts.chinese_text()
    def draw() -> Figure:
        fig = Figure()
        fig.text(0.5, 0.5, "✓ 热狗")
        return fig

    with pytest.raises(AssertionError, match="✓"):
        assert_in_shipped_font(strict_render(draw, caplog))
