# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The Grad-CAM figure: one row per model, the heat map over each crop, Chinese titles that
mark the wrong predictions; rendered with Agg, every glyph in the shipped font."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_gradcam import ColourNet
from test_predict import assert_in_shipped_font, chinese_texts, strict_render

from d2lhelpers.book import fonts
from d2lhelpers.book.cam_plots import cam_figure, overlay
from d2lhelpers.book.predict_plots import RIGHT_COLOR, WRONG_COLOR
from d2lhelpers.data import HOTDOG_CLASSES, DecodedImages, Recipe
from d2lhelpers.gradcam import displayable, grad_cam, model_inputs

RECIPE = Recipe(32)  # stored at 37 px, centre crop from 2 to 34


@pytest.fixture
def images() -> DecodedImages:
    """Red (hot dog to ColourNet) in the top left, then green in the bottom right twice: the
    first green one labelled hot dog, so that ColourNet gets it wrong."""
    pixels = torch.zeros(3, 3, 37, 37, dtype=torch.uint8)
    pixels[0, 0, 2:18, 2:18] = 250
    pixels[1:, 1, 18:34, 18:34] = 250
    labels = torch.tensor([0, 0, 1])
    return DecodedImages(pixels, labels, ["a", "b", "c"], HOTDOG_CLASSES)


def models() -> dict[str, torch.nn.Module]:
    flipped = ColourNet()
    with torch.no_grad():
        flipped.fc.weight.neg_()  # red means not a hot dog: every answer turned round
    return {"微调": ColourNet(), "从头训练": flipped}


def test_cam_figure_titles_colours_and_heat(
    images: DecodedImages, caplog: pytest.LogCaptureFixture
) -> None:
    nets = models()
    fig = strict_render(lambda: cam_figure(images, nets, RECIPE), caplog)
    axes = fig.get_axes()
    assert len(axes) == 2 * 3
    titles = [ax.title.get_text() for ax in axes]
    assert titles[0].startswith("真实：热狗\n预测：热狗 ") and titles[0].endswith("%")
    assert titles[1].startswith("真实：热狗\n预测：非热狗 ")
    assert titles[2].startswith("真实：非热狗\n预测：非热狗 ")
    assert titles[3].startswith("真实：热狗\n预测：非热狗 ")
    colours = [ax.title.get_color() for ax in axes]
    right, wrong = RIGHT_COLOR, WRONG_COLOR
    assert colours == [right, wrong, right, wrong, right, wrong]
    assert [axes[0].get_ylabel(), axes[3].get_ylabel()] == ["微调", "从头训练"]
    assert {t.get_fontfamily()[0] for t in chinese_texts(fig)} == {fonts.FAMILY}
    assert_in_shipped_font(fig)

    x = model_inputs(images, [0, 1, 2], RECIPE)
    cam = grad_cam(nets["微调"], x)
    assert f"{cam.probabilities[0, 0]:.0%}" in titles[0]
    shown = axes[0].get_images()[0].get_array()
    picture = displayable(x, RECIPE)[0].numpy()
    assert shown.shape == (32, 32, 3) and not np.allclose(shown, picture)
    assert np.allclose(shown, overlay(picture, cam.maps[0].numpy()))


def test_cam_figure_with_chosen_images_and_checks(
    images: DecodedImages, caplog: pytest.LogCaptureFixture
) -> None:
    fig = strict_render(lambda: cam_figure(images, {"一": ColourNet()}, RECIPE, [2]), caplog)
    assert len(fig.get_axes()) == 1
    assert fig.get_axes()[0].title.get_text().startswith("真实：非热狗")
    with pytest.raises(ValueError, match="nets is empty"):
        cam_figure(images, {}, RECIPE)
    with pytest.raises(ValueError, match=r"feature maps, got \(3, 2\)"):
        cam_figure(images, {"一": ColourNet()}, RECIPE, layer="fc")
    three = DecodedImages(images.pixels, images.labels, images.paths, ("a", "b", "c"))
    with pytest.raises(ValueError, match="'一' has 2 outputs but the images have 3 classes"):
        cam_figure(three, {"一": ColourNet()}, RECIPE)


def test_overlay_blends_the_colour_map() -> None:
    picture = np.full((2, 2, 3), 0.5)
    heat = np.array([[0.0, 1.0], [0.5, 1.0]])
    assert np.allclose(overlay(picture, heat, alpha=0.0), picture)
    full = overlay(picture, heat, alpha=1.0, cmap="gray")
    assert np.allclose(full[..., 0], heat, atol=1 / 255)  # a colour map of 256 colours
    per_pixel = overlay(picture, heat, alpha=np.array([[0.0, 1.0], [0.0, 0.0]]), cmap="gray")
    assert np.allclose(per_pixel[0, 1], 1.0) and np.allclose(per_pixel[1], 0.5)
