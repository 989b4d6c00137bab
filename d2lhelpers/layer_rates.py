"""Layer-wise learning rates (discriminative fine-tuning, Howard & Ruder 2018; the layer-wise
rate decay of BEiT and timm): the deeper a stage, the faster it learns.

A ResNet's stages from the input upward are the stem (``conv1``, ``bn1``), ``layer1`` to
``layer4`` and the output layer. The stages near the input compute general features (edges,
colours) that transfer as they are; the later ones are more specific to the source task. So
``layer4`` learns at ``learning_rate``, each stage below at the rate of the one above times
``decay``, and the new output layer at ``learning_rate * head_multiplier``. With ``decay=1``
this is the chapter's setting: the body at one rate, the output layer at ten times it.

Gradual unfreezing (ULMFiT) is not here: it needs the loop to change what trains between
epochs, and a stage that does not train must keep its BatchNorm statistics frozen too.
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import positive_finite
from .finetune import WEIGHT_DECAY
from .models import find_head

BODY_STAGES = (("stem", ("conv1", "bn1")), *((f"layer{i}", (f"layer{i}",)) for i in range(1, 5)))


def layerwise_param_groups(
    net: nn.Module, learning_rate: float, decay: float, head_multiplier: float = 10.0
) -> list[dict]:
    """Parameter groups of a torchvision ResNet, from the input upward: ``stem``, ``layer1``
    to ``layer4`` and ``head`` (its output layer), each a dict with its ``name``, ``params``
    and ``lr``, which ``torch.optim`` optimizers accept.

    ``layer4`` gets ``learning_rate``, each stage below ``decay`` (0 < decay <= 1) times the
    rate of the one above (the stem ``learning_rate * decay**4``), the head
    ``learning_rate * head_multiplier``. Every parameter of ``net`` is in exactly one group.
    """
    learning_rate = positive_finite("learning_rate", learning_rate)
    decay = positive_finite("decay", decay)
    if decay > 1:
        raise ValueError(f"decay must be at most 1 (0 < decay <= 1), got {decay!r}.")
    head_multiplier = positive_finite("head_multiplier", head_multiplier)
    stages = _stages(net)
    top = len(stages) - 2  # layer4's index; the head is last
    groups = [
        {"name": name, "params": params, "lr": learning_rate * decay ** (top - index)}
        for index, (name, params) in enumerate(stages[:-1])
    ]
    name, params = stages[-1]
    return [*groups, {"name": name, "params": params, "lr": learning_rate * head_multiplier}]


def layerwise_sgd(
    net: nn.Module,
    learning_rate: float,
    batch_size: int,
    decay: float = 1.0,
    head_multiplier: float = 10.0,
) -> torch.optim.SGD:
    """The chapter's SGD (weight decay ``WEIGHT_DECAY / batch_size``) on
    :func:`layerwise_param_groups`; with ``decay=1`` the same steps as
    :func:`~d2lhelpers.finetune.train_fine_tuning`'s optimizer."""
    groups = layerwise_param_groups(net, learning_rate, decay, head_multiplier)
    return torch.optim.SGD(groups, lr=learning_rate, weight_decay=WEIGHT_DECAY / batch_size)


def _stages(net: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, parameters) of each stage, the head last; ValueError naming what is missing or
    what no stage holds."""
    missing = [m for _, modules in BODY_STAGES for m in modules if not hasattr(net, m)]
    if missing:
        raise ValueError(
            f"Layer-wise rates need a torchvision ResNet (conv1, bn1, layer1 to layer4 and an "
            f"output layer); {type(net).__name__} has no {', '.join(missing)}."
        )
    stages = [
        (name, [p for m in modules for p in getattr(net, m).parameters()])
        for name, modules in BODY_STAGES
    ]
    stages.append(("head", list(find_head(net).layer.parameters())))
    placed = {id(p) for _, params in stages for p in params}
    left = [name for name, p in net.named_parameters() if id(p) not in placed]
    if left:
        raise ValueError(f"No stage holds the parameters {', '.join(left)} of the net.")
    return stages
