"""Model surgery for fine-tuning: find and replace the output layer, freezing, class-row copy.

Works on torchvision classifiers: ResNet (``fc``), MobileNetV3 / EfficientNet / ConvNeXt
(the last ``Linear`` of ``classifier``) and ViT (``heads.head``).
"""

from __future__ import annotations

import copy
import http.client
import pickle
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.ops import FrozenBatchNorm2d

from .checks import int_at_least, non_negative_int
from .environment import DATA_SOURCE_ENV

HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
IMAGENET_HOTDOG_CLASS = 934  # ImageNet-1k: "hotdog, hot dog, red hot"


IMAGENET_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
# download: URLError, socket errors, a bad hash (RuntimeError); load: whatever a bad file gives
_WEIGHTS_ERRORS = (
    urllib.error.URLError, OSError, http.client.HTTPException, RuntimeError,
    pickle.UnpicklingError, EOFError, ValueError,
)  # fmt: skip


class WeightsError(RuntimeError):
    """The ImageNet weights could not be downloaded, or the cached copy is corrupt."""


def imagenet_weights_path() -> Path:
    """The file torchvision looks for: ``$TORCH_HOME/hub/checkpoints/<name of the URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_WEIGHTS.url).name


def imagenet_resnet18(progress: bool = True) -> nn.Module:
    """ResNet-18 with ImageNet-1k weights (``ResNet18_Weights.IMAGENET1K_V1``).

    torchvision downloads the weights once into ``$TORCH_HOME/hub/checkpoints``
    (:func:`imagenet_weights_path`). Raises WeightsError naming that file, its folder, the URL
    and the stand-in switch when the download fails or the cached file cannot be read.
    """
    path = imagenet_weights_path()
    cached = path.is_file()
    try:
        return resnet18(weights=IMAGENET_WEIGHTS, progress=progress)
    except _WEIGHTS_ERRORS as err:
        raise WeightsError(_weights_message(path, cached, err)) from err


def _weights_message(path: Path, cached: bool, err: BaseException) -> str:
    """Explain a failed load of the ImageNet weights and the ways out."""
    what = (
        f"The cached file {path} is corrupt or unreadable ({type(err).__name__}: {err}); "
        "delete it so that it is downloaded again"
        if cached
        else f"Downloading them failed ({type(err).__name__}: {err}); you may be offline"
    )
    return (
        f"Could not load the ImageNet weights of ResNet-18 ({IMAGENET_WEIGHTS}). {what}.\n"
        f"torchvision looks for the file {path.name} in {path.parent} "
        f"($TORCH_HOME/hub/checkpoints) and downloads it from {IMAGENET_WEIGHTS.url}. "
        "You can either\n"
        f"  - put that file there by hand, or\n"
        f"  - use the offline stand-in source model: set the environment variable "
        f"{DATA_SOURCE_ENV}=standin."
    )


@dataclass(frozen=True)
class HeadLocation:
    """Where the output layer lives: ``parent.<name>`` is the ``Linear`` output layer."""

    parent: nn.Module
    name: str

    @property
    def layer(self) -> nn.Linear:
        return getattr(self.parent, self.name)


def find_head(net: nn.Module) -> HeadLocation:
    """Locate the output layer (the final ``Linear``) of a torchvision classifier."""
    for attr in HEAD_ATTRIBUTES:
        module = getattr(net, attr, None)
        if isinstance(module, nn.Linear):
            return HeadLocation(net, attr)
        if isinstance(module, nn.Sequential) and len(module) > 0:
            name, last = list(module.named_children())[-1]
            if isinstance(last, nn.Linear):
                return HeadLocation(module, name)
    raise ValueError(
        f"Cannot find the output layer of {type(net).__name__}: expected a Linear layer at one "
        f"of the attributes {', '.join(HEAD_ATTRIBUTES)} (or as the last layer of a Sequential "
        "there). Pass a torchvision classifier such as resnet18."
    )


def make_target_model(source: nn.Module, num_classes: int) -> nn.Module:
    """Copy ``source`` and give the copy a new Xavier-initialised output layer.

    Every other parameter and buffer of the copy equals the source model's; the source model
    itself is not modified.
    """
    num_classes = int_at_least("num_classes", num_classes, 2)
    target = copy.deepcopy(source)
    head = find_head(target)
    old = head.layer
    new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
    nn.init.xavier_uniform_(new.weight)
    nn.init.zeros_(new.bias)
    setattr(head.parent, head.name, new)
    return target


def freeze_body(net: nn.Module) -> nn.Module:
    """Freeze every layer before the output layer; only the output layer keeps training.

    Body parameters get ``requires_grad=False`` and every ``BatchNorm2d`` of the body becomes a
    ``FrozenBatchNorm2d`` that always normalises with the stored running statistics, so its
    statistics never drift, even after ``net.train()``. A body without dropout (ResNet) then
    computes the same function in both modes; dropout and stochastic depth (MobileNetV3,
    EfficientNet) still follow the mode. Modifies ``net`` in place and returns it.
    """
    head = find_head(net).layer
    for p in net.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    freeze_batchnorm(net)
    return net


def freeze_batchnorm(net: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``net`` by a ``FrozenBatchNorm2d`` holding its weights
    and running statistics: it normalises with those statistics in training too, and its
    weights no longer learn. Each example is then computed on its own. Modifies ``net`` in
    place and returns it."""
    for name, child in net.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(net, name, frozen.to(child.weight.device))
        else:
            freeze_batchnorm(child)
    return net


def copy_class_row(
    target: nn.Module,
    source: nn.Module,
    source_class: int,
    target_class: int,
    other_row_negated: bool = False,
) -> None:
    """Initialise row ``target_class`` of the target's output layer from the source's class row.

    E.g. ImageNet class 934 ("hotdog") of the source model into the hot dog row (0) of the new
    two-class head: weight row and bias are copied. With ``other_row_negated`` (a two-class
    head only) the other row becomes its negative, so that the head starts as the source
    model's own detector for that class: the logits are (s, -s) for its class score s.
    """
    source_class = non_negative_int("source_class", source_class)
    target_class = non_negative_int("target_class", target_class)
    src, dst = find_head(source).layer, find_head(target).layer
    if not 0 <= source_class < src.out_features:
        raise ValueError(
            f"source_class {source_class} is outside 0..{src.out_features - 1} of the source head."
        )
    if not 0 <= target_class < dst.out_features:
        raise ValueError(
            f"target_class {target_class} is outside 0..{dst.out_features - 1} of the target head."
        )
    if src.in_features != dst.in_features:
        raise ValueError(
            f"Head input sizes differ: source {src.in_features}, target {dst.in_features}."
        )
    if other_row_negated and dst.out_features != 2:
        raise ValueError(
            f"other_row_negated needs a two-class output layer, got {dst.out_features} classes."
        )
    with torch.no_grad():
        dst.weight[target_class].copy_(src.weight[source_class])
        dst.bias[target_class].copy_(src.bias[source_class])
        if other_row_negated:
            dst.weight[1 - target_class].copy_(-src.weight[source_class])
            dst.bias[1 - target_class].copy_(-src.bias[source_class])
