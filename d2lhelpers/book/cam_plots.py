# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Where the model looks: Grad-CAM heat maps (:mod:`d2lhelpers.gradcam`) over the images.

The figure shows the crops the models saw (the test transform's centre crop), each with the
heat map of the class the model predicted laid over it; its text is Chinese.
:func:`photo_overlay` lays the heat map over a photo shown at another size (the photo panel's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from ..checks import positive_int
from ..data import DecodedImages, Recipe
from ..gradcam import displayable, grad_cam, model_inputs, photo_input
from ..predict import spread_indices
from .fonts import chinese_text
from .labels import class_label
from .predict_plots import RIGHT_COLOR, WRONG_COLOR, framed_image

CMAP = "jet"  # heat maps: blue (nothing) to red (the most evidence)
ALPHA = 0.45  # the heat map's weight over the picture


def overlay(
    picture: np.ndarray, heat: np.ndarray, alpha: float | np.ndarray = ALPHA, cmap: str = CMAP
) -> np.ndarray:
    """``picture`` (H, W, 3) in [0, 1] with ``heat`` (H, W) in [0, 1] blended over it in the
    colours of ``cmap``, weighted ``alpha`` (one number, or (H, W) per pixel): (H, W, 3)."""
    colours = matplotlib.colormaps[cmap](np.asarray(heat))[..., :3]
    weight = np.broadcast_to(np.asarray(alpha, dtype=float), np.shape(heat))[..., None]
    return (1 - weight) * picture + weight * colours


@chinese_text()
def cam_figure(
    images: DecodedImages,
    nets: Mapping[str, nn.Module],
    recipe: Recipe,
    index: Sequence[int] | torch.Tensor | None = None,
    n: int = 6,
    layer: str | None = None,
    scale: float = 1.6,
) -> Figure:
    """The same images in one row per model (``{name: net}``), each with the Grad-CAM heat map
    of the model's predicted class, titled 真实 (the true class) and 预测 (the prediction and
    its probability), green when right, red when wrong; each row starts with the model's name.

    ``index`` picks the images (default: ``n`` spread evenly over the split; see
    :func:`~d2lhelpers.gradcam.pick_examples`). ``layer`` names the layer explained in every
    net (default ``layer4``; see :func:`~d2lhelpers.gradcam.grad_cam`).
    """
    if not nets:
        raise ValueError("nets is empty: pass {model name: net}.")
    chosen = spread_indices(positive_int("n", n), len(images)) if index is None else index
    x = model_inputs(images, chosen, recipe)
    pictures = displayable(x, recipe).numpy()
    labels = images.labels[torch.as_tensor(chosen).flatten()].tolist()
    fig = Figure(figsize=(len(x) * scale, len(nets) * (scale + 0.4)), layout="constrained")
    axes = fig.subplots(len(nets), len(x), squeeze=False)
    for row, (name, net) in zip(axes, nets.items(), strict=True):
        cam = grad_cam(net, x, layer=layer)
        if cam.logits.shape[1] != len(images.classes):
            raise ValueError(
                f"The net {name!r} has {cam.logits.shape[1]} outputs but the images have "
                f"{len(images.classes)} classes {images.classes}."
            )
        confidence = cam.probabilities.gather(1, cam.predicted[:, None])[:, 0]
        for j, ax in enumerate(row):
            true, guess = images.classes[labels[j]], images.classes[int(cam.predicted[j])]
            title = f"真实：{class_label(true)}\n预测：{class_label(guess)} {confidence[j]:.0%}"
            color = RIGHT_COLOR if true == guess else WRONG_COLOR
            framed_image(ax, overlay(pictures[j], cam.maps[j].numpy()), title, color)
        row[0].set_ylabel(name, fontsize=9)
    return fig


def photo_overlay(
    net: nn.Module,
    photo: Image.Image,
    shown: Image.Image,
    recipe: Recipe,
    layer: str | None = None,
    alpha: float = ALPHA,
) -> Image.Image:
    """``shown`` (the photo at display size) with the Grad-CAM heat map of the class ``net``
    predicts for ``photo`` (decoded for the net, as ``classify_photo`` takes it) over the part
    the net saw: the centre ``recipe.size / recipe.resize_side`` of each side. ``layer``: as
    :func:`~d2lhelpers.gradcam.grad_cam`'s."""
    heat = grad_cam(net, photo_input(photo, recipe), layer=layer).maps[None]  # (1, 1, size, size)
    width, height = shown.size
    box_w, box_h = (max(1, round(side * recipe.size / recipe.resize_side)) for side in shown.size)
    top, left = (height - box_h) // 2, (width - box_w) // 2
    full, seen = np.zeros((height, width)), np.zeros((height, width))
    box = (slice(top, top + box_h), slice(left, left + box_w))
    scaled = F.interpolate(heat, size=(box_h, box_w), mode="bilinear", align_corners=False)
    full[box] = scaled[0, 0].numpy()
    seen[box] = alpha
    picture = np.asarray(shown.convert("RGB"), dtype=float) / 255
    blended = overlay(picture, full, seen)
    return Image.fromarray(np.round(blended * 255).astype(np.uint8))
