"""Grad-CAM (Selvaraju et al., 2017): where in an image a model finds the evidence for a class.

:func:`grad_cam` weights each channel of a convolutional layer's output (default: a ResNet's
last stage, ``net.layer4``) by the spatial mean of the class logit's gradient with respect to
it, sums the channels, keeps the positive part and scales it up to the input's size. The inputs
are the test transform's (:func:`model_inputs`: the centre crop of
:class:`~d2lhelpers.data.BatchLoader`, normalised), run in eval mode under the device's autocast
as :func:`~d2lhelpers.predict.logits_of` runs them, so the predictions are the evaluation's.
:func:`displayable` undoes the normalisation for showing the crops; :func:`pick_examples` picks
test images that two (or more) models get right and wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .checks import positive_int
from .data import BatchLoader, DecodedImages, Recipe
from .photo import photo_pixels
from .precision import choose_precision
from .predict import Predictions, eval_mode, spread_indices


@dataclass
class CamResult:
    """Grad-CAM of N images, on the CPU: ``maps`` (N, H, W) float32 in [0, 1] at the input's
    size, ``logits`` (N, C) float32, ``target`` (N,) int64 the class each map explains."""

    maps: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor

    @property
    def probabilities(self) -> torch.Tensor:
        """(N, C) softmax of the logits."""
        return self.logits.softmax(1)

    @property
    def predicted(self) -> torch.Tensor:
        """(N,) the most probable classes."""
        return self.logits.argmax(1)


def grad_cam(
    net: nn.Module,
    x: torch.Tensor,
    target_class: int | torch.Tensor | None = None,
    layer: nn.Module | str | None = None,
) -> CamResult:
    """Grad-CAM maps of ``net`` for the batch ``x`` (N, 3, H, W), moved to the net's device.

    ``target_class``: the class to explain, one for all images or (N,) one per image; None, the
    predicted class. ``layer``: a submodule of ``net``, or its name (``"layer3"``), that runs
    once and returns (N, K, h, w); default ``net.layer4``, whose maps are 7 x 7 for 224 px
    inputs but 1 x 1 (one value: a uniform map) for 32 px ones, where ``"layer3"`` (2 x 2) or
    ``"layer2"`` (4 x 4) show more.

    The gradient is taken by ``torch.autograd.grad`` with respect to the layer's output, caught
    by a forward hook that is always removed; not by a backward hook, as PyTorch refuses
    in-place ops (ResNet's blocks have them) on the outputs of a module with a full backward
    hook. The parameters' ``.grad`` stay as they were. Works under ``torch.no_grad`` and
    ``torch.inference_mode`` too; each module's training mode is restored.
    """
    layer = _check_layer(net, layer)
    device = next(net.parameters()).device
    caught: list[torch.Tensor] = []
    handle = layer.register_forward_hook(
        lambda _module, _inputs, output: caught.append(output),
    )
    try:
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            eval_mode(net),
        ):
            # requires_grad: a graph even for a frozen body
            x = x.to(device).clone().requires_grad_(True)
            with choose_precision(device).autocast():
                logits = net(x)
            activation = _caught_output(caught, layer)
            target = _target(target_class, logits.detach())
            # image i's logit depends on image i only
            score = logits.gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    activation, grad = activation.detach().float(), grad.float()
    maps = cam_from_gradients(activation, grad, x.shape[-2:])
    logits = logits.detach().float()
    return CamResult(maps.cpu(), logits.cpu(), target.cpu())


def _check_layer(net: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    """``layer`` (named or None for ``net.layer4``); ValueError unless it is in ``net``."""
    if isinstance(layer, str):
        names = dict(net.named_modules())
        if not layer or layer not in names:
            raise ValueError(
                f"{type(net).__name__} has no module named {layer!r}; its top-level ones are "
                f"{', '.join(name for name, _ in net.named_children())}."
            )
        return names[layer]
    if layer is None:
        layer = getattr(net, "layer4", None)
        if not isinstance(layer, nn.Module):
            raise ValueError(
                f"{type(net).__name__} has no layer4: pass layer=, the convolutional layer whose "
                "output Grad-CAM explains (for example the last convolutional block)."
            )
    if not isinstance(layer, nn.Module) or not any(m is layer for m in net.modules()):
        raise ValueError(
            f"layer must be one of the net's modules (net.modules()), got a {type(layer).__name__} "
            "that is not."
        )
    return layer


def _caught_output(caught: list[torch.Tensor], layer: nn.Module) -> torch.Tensor:
    """The layer's one output, (N, K, h, w); ValueError when it ran other than once or its
    output is not a 4-D tensor."""
    if len(caught) != 1:
        raise ValueError(
            f"The layer {type(layer).__name__} ran {len(caught)} times in one forward pass; "
            "Grad-CAM needs a layer that runs exactly once."
        )
    out = caught[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"The layer's output must be (N, K, h, w) feature maps, got {shape}.")
    return out


def _target(target_class: int | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """(N,) int64 classes to explain, on the logits' device: the predicted ones for None."""
    n, c = logits.shape
    if target_class is None:
        return logits.argmax(1)
    if isinstance(target_class, bool) or not isinstance(target_class, (int, torch.Tensor)):
        raise ValueError(f"target_class must be an int, a tensor or None, got {target_class!r}.")
    target = torch.as_tensor(target_class, device=logits.device)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target_class must hold integers, got {target_class!r}.")
    target = target.to(torch.int64).expand(n) if target.dim() == 0 else target.to(torch.int64)
    if target.shape != (n,):
        raise ValueError(f"target_class must be one class or {n} classes, got {target_class!r}.")
    if ((target < 0) | (target >= c)).any():
        raise ValueError(f"target_class must lie in 0 .. {c - 1}, got {target_class!r}.")
    return target


def cam_from_gradients(
    activation: torch.Tensor, grad: torch.Tensor, size: torch.Size
) -> torch.Tensor:
    """ReLU of the gradient-weighted channel sum, scaled up to ``size`` (bilinear) and divided
    by each map's maximum (an all-zero map stays zero)."""
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True))
    cam = F.interpolate(
        cam,
        size=tuple(size),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    # 0 / tiny: a zero map stays zero
    return cam / peak.clamp_min(torch.finfo(cam.dtype).tiny)


def model_inputs(
    images: DecodedImages,
    index: Sequence[int] | torch.Tensor,
    recipe: Recipe,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The images at ``index`` as the evaluation feeds them to the net: squashed to
    ``recipe.resize_side`` (a no-op for a test split), centre-cropped, normalised, on
    ``device``; (n, 3, size, size)."""
    index = torch.as_tensor(index).flatten()
    if index.dtype not in (torch.int32, torch.int64) or not len(index):
        raise ValueError(f"index must be a non-empty sequence of integers, got {index!r}.")
    if index.min() < -len(images) or index.max() >= len(images):
        raise ValueError(f"index must lie in 0 .. {len(images) - 1}, got {index.tolist()}.")
    chosen = images.subset(index.long() % len(images)).resized(recipe.resize_side)
    loader = BatchLoader(chosen, len(chosen), recipe, train=False, device=device)
    return loader.batch(torch.arange(len(chosen)))[0]


def photo_input(
    image: Image.Image, recipe: Recipe, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A photo as :func:`~d2lhelpers.photo.classify_photo` feeds it to the net: (1, 3, S, S)."""
    pixels = photo_pixels(image, recipe)[None]
    one = DecodedImages(pixels, torch.zeros(1, dtype=torch.int64), [""], ("",))
    return model_inputs(one, [0], recipe, device)


def displayable(x: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Normalised inputs (N, 3, H, W) as pictures to show: (N, H, W, 3) float32 in [0, 1] on
    the CPU, exactly the pixels the net saw."""
    std = torch.tensor(recipe.std).view(1, 3, 1, 1)
    mean = torch.tensor(recipe.mean).view(1, 3, 1, 1)
    pictures = x.detach().float().cpu() * std + mean
    return pictures.clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def pick_examples(preds: Sequence[Predictions], n: int = 8) -> torch.Tensor:
    """``n`` indices of examples (fewer when there are fewer) for comparing models: one per
    pattern of right and wrong across ``preds`` (the same split's predictions by each model)
    in turn, patterns with fewer mistakes first; within a pattern, spread evenly over the split.
    """
    n = positive_int("n", n)
    if not preds or any(not torch.equal(p.labels, preds[0].labels) for p in preds):
        raise ValueError("preds must be predictions of several models on the same examples.")
    correct = torch.stack([p.correct for p in preds], 1)  # (N, models)
    patterns = sorted(
        {tuple(row) for row in correct.tolist()}, key=lambda p: (p.count(False), [not r for r in p])
    )
    groups = [torch.nonzero((correct == torch.tensor(p)).all(1)).flatten() for p in patterns]
    counts, wanted = [0] * len(groups), min(n, len(correct))
    while sum(counts) < wanted:  # round robin over the patterns that have examples left
        for g, members in enumerate(groups):
            if counts[g] < len(members) and sum(counts) < wanted:
                counts[g] += 1
    picked = [g[spread_indices(k, len(g))] for g, k in zip(groups, counts, strict=True) if k]
    return torch.cat(picked) if picked else torch.empty(0, dtype=torch.int64)
