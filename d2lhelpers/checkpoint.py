"""Saving a fine-tuned ResNet-18 with what is needed to use it again, and loading it back.

A checkpoint is one ``torch.save`` file holding plain data only, so that
``torch.load(path, weights_only=True)`` reads it (no code runs on loading)::

    {"format": "d2lhelpers-finetuned/1",
     "state_dict": {name: tensor},
     "metadata": {"classes": [...], "recipe": {Recipe fields}, "architecture": "resnet18",
                  "num_classes": C, "source_model": "...", "test_acc": 0.93 or None,
                  "versions": {"torch": ..., "torchvision": ..., "d2lhelpers": ...},
                  "saved_at": "2024-01-01T12:00:00+00:00", "extra": {...}}}

It is written atomically (a temporary file, then a rename) holding ``<name>.lock``: a crash
leaves the old file or none, and the next save removes the temporary file a killed one left.
"""

from __future__ import annotations

import dataclasses
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import resnet18
from torchvision.ops import FrozenBatchNorm2d

from . import __version__
from .checks import one_line
from .data import Recipe
from .fileutil import display_path, replace_file

FORMAT = "d2lhelpers-finetuned/1"
ARCHITECTURE = "resnet18"
HEAD_WEIGHT = "fc.weight"
PLAIN_TYPES = (str, int, float, bool, type(None))
LISTED_KEYS = 5  # how many missing or unexpected keys a message lists
MAX_RECIPE_SIZE = 1024  # the largest crop size a checkpoint's recipe may have (Recipe's least: 8)
REQUIRED_METADATA = ("classes", "recipe", "architecture", "num_classes", "source_model", "test_acc")


class CheckpointError(ValueError):
    """A file that is not a loadable d2lhelpers checkpoint; the message names the file."""


def plain(name: str, value: Any) -> Any:
    """``value`` with tuples as lists, checked to hold only dicts (str keys), lists, str, int,
    float, bool and None; ValueError naming ``name`` otherwise."""
    if isinstance(value, PLAIN_TYPES):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"{name} must have str keys, got {list(value)!r}.")
        return {key: plain(f"{name}[{key!r}]", v) for key, v in value.items()}
    raise ValueError(
        f"{name} holds a {type(value).__name__}; a checkpoint keeps only dicts, lists, str, int, "
        "float, bool and None."
    )


def _reference(num_classes: int) -> dict[str, torch.Tensor]:
    """The state dict (names and shapes, no storage) of ``resnet18(num_classes=...)``."""
    with torch.device("meta"):
        return resnet18(num_classes=num_classes).state_dict()


def _shape(value: Any) -> tuple[int, ...] | str:
    """A tensor's shape, or the type of anything else."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _listed(keys: list[str]) -> str:
    """The first :data:`LISTED_KEYS` of ``keys``, and how many more."""
    more = f" and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else ""
    return ", ".join(keys[:LISTED_KEYS]) + more


def _key_problems(state: dict[str, Any], num_classes: int) -> list[str]:
    """What keeps ``state`` from loading strictly into ``resnet18(num_classes=...)``."""
    expected = _reference(num_classes)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [
        f"{key} {_shape(state[key])} instead of {tuple(expected[key].shape)}"
        for key in expected
        if key in state and _shape(state[key]) != tuple(expected[key].shape)
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            problems.append(f"{what} keys: {_listed(keys)}")
    return problems


def _plain_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state on the CPU, with the batch count a BatchNorm2d has and a frozen one
    lacks."""
    state = {key: value.detach().cpu().clone() for key, value in net.state_dict().items()}
    for name, module in net.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            state.setdefault(f"{name}.num_batches_tracked", torch.tensor(0))
    return state


def _versions() -> dict[str, str]:
    return {
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "d2lhelpers": __version__,
    }


def _test_acc(test_acc: float | None) -> float | None:
    if test_acc is None:
        return None
    if isinstance(test_acc, bool) or not isinstance(test_acc, (int, float)):
        raise ValueError(f"test_acc must be a number in [0, 1] or None, got {test_acc!r}.")
    if not (math.isfinite(test_acc) and 0 <= test_acc <= 1):
        raise ValueError(f"test_acc must be a number in [0, 1] or None, got {test_acc!r}.")
    return float(test_acc)


def save_model(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    classes: tuple[str, ...] | list[str],
    recipe: Recipe,
    source_model: str,
    test_acc: float | None,
    extra: dict | None = None,
) -> Path:
    """Save the ResNet-18 ``net`` with its metadata to ``path`` atomically (its folder is
    created if missing), holding ``path``'s lock and removing the temporary files that killed
    saves of it left; return the path.

    ``extra`` (plain data only) is kept in ``metadata["extra"]``. A net whose BatchNorm layers
    were frozen (:func:`~d2lhelpers.models.freeze_batchnorm`) is saved as the plain ResNet-18
    that computes the same in eval mode. Raises ValueError, before writing, when ``net`` is not
    a ResNet-18 with ``len(classes)`` outputs, a weight is not finite or a value is not plain
    data; OSError (ENOSPC) naming the file and the space it needs when the disk is full, and
    nothing is left behind.
    """
    classes = [str(name) for name in classes]
    state = _plain_state(net)
    problems = _key_problems(state, len(classes))
    if problems:
        raise ValueError(
            f"net is not a {ARCHITECTURE} with {len(classes)} outputs (one per class of "
            f"{classes}): {'; '.join(problems)}."
        )
    if non_finite := _non_finite(state):
        raise ValueError(
            f"net's weights {_listed(non_finite)} hold NaN or infinite values (did training "
            "diverge?); a model that load_model would refuse is not saved."
        )
    metadata = {
        "classes": classes,
        "recipe": plain("recipe", dataclasses.asdict(recipe)),
        "architecture": ARCHITECTURE,
        "num_classes": len(classes),
        "source_model": str(source_model),
        "test_acc": _test_acc(test_acc),
        "versions": _versions(),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": plain("extra", dict(extra or {})),
    }
    path = Path(path)
    payload = {"format": FORMAT, "state_dict": state, "metadata": metadata}
    size = sum(tensor.nbytes for tensor in state.values()) + (1 << 20)  # and the metadata's
    replace_file(path, lambda f: torch.save(payload, f), size)
    return path


def _non_finite(state: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold NaN or infinities."""
    return [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


def recipe_from_metadata(metadata: dict, where: str = "the checkpoint") -> Recipe:
    """The :class:`~d2lhelpers.data.Recipe` a checkpoint's metadata records; CheckpointError
    naming ``where`` when it is not a valid recipe with a crop size of at most
    :data:`MAX_RECIPE_SIZE` (resized to at most twice that)."""
    fields = metadata.get("recipe") if isinstance(metadata, dict) else None
    if not isinstance(fields, dict):
        raise CheckpointError(f"{where}: its metadata has no recipe (a dict of Recipe fields).")
    try:
        recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{where}: its recipe is not valid ({one_line(err, with_type=False)}); save the "
            "model again with save_model."
        ) from err
    if recipe.size > MAX_RECIPE_SIZE or recipe.resize_side > 2 * MAX_RECIPE_SIZE:
        raise CheckpointError(
            f"{where}: its recipe's crop size {recipe.size} (resized to {recipe.resize_side}) "
            f"is beyond {MAX_RECIPE_SIZE} ({2 * MAX_RECIPE_SIZE}); save the model again with "
            "save_model."
        )
    return recipe


def read_plain(path: Path, what: str) -> Any:
    """The plain data (tensors, dicts, lists, numbers, str) that ``torch.save`` wrote at
    ``path``, read with ``weights_only=True`` so that no code runs; CheckpointError naming the
    file and saying it is not ``what`` otherwise."""
    where = display_path(path)
    if not path.is_file():
        reason = "a folder, not a file" if path.is_dir() else "no such file"
        raise CheckpointError(f"{where}: {reason}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types (UnpicklingError, KeyError, ...)
        raise CheckpointError(f"{where} is not {what}: {_unloadable(err)}.") from err


def _unloadable(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to load it
    with ``weights_only=False`` (which runs any code the file holds)."""
    message = str(err)
    if "GLOBAL" not in message:  # not a class or function the unpickler refused
        return "torch.save did not write it, or it is damaged"
    parts = (" ".join(part.split()) for part in message.split("\n\n"))
    detail = [p for p in parts if p and "weights_only" not in p and "documentation" not in p]
    why = f" ({detail[0][:200].rstrip('.')})" if detail else ""
    return (
        f"it holds Python objects other than tensors and plain data{why}, which are not "
        "loaded as they could run code"
    )


def _checked_payload(payload: Any, where: str) -> tuple[dict, dict]:
    """The (state_dict, metadata) of a d2lhelpers checkpoint, or CheckpointError."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{where} holds a {type(payload).__name__}, not a checkpoint dict.")
    if "format" not in payload:
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise CheckpointError(
                f"{where} is a plain state_dict without metadata (classes, recipe): load it "
                "with resnet18(num_classes=...).load_state_dict(torch.load(...)), or save "
                "models with d2lhelpers.checkpoint.save_model."
            )
        raise CheckpointError(f"{where} is not a d2lhelpers checkpoint (no 'format' entry).")
    if payload["format"] != FORMAT:
        raise CheckpointError(
            f"{where} has format {payload['format']!r}; this d2lhelpers reads {FORMAT!r}."
        )
    state, metadata = payload.get("state_dict"), payload.get("metadata")
    if not isinstance(state, dict) or not isinstance(metadata, dict):
        raise CheckpointError(f"{where} lacks its 'state_dict' or 'metadata' dict.")
    return state, metadata


def _num_classes(state: dict, metadata: dict, where: str, expected: int | None) -> int:
    """The checked number of classes: metadata, classes, head and caller agree."""
    if metadata.get("architecture") != ARCHITECTURE:
        raise CheckpointError(
            f"{where} holds a {metadata.get('architecture')!r}; only {ARCHITECTURE} is supported."
        )
    n, classes = metadata.get("num_classes"), metadata.get("classes")
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise CheckpointError(f"{where}: metadata classes {classes!r} is not a list of names.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or len(classes) != n:
        raise CheckpointError(f"{where}: metadata num_classes {n!r} does not match classes.")
    head = state.get(HEAD_WEIGHT)
    if isinstance(head, torch.Tensor) and head.ndim == 2 and head.shape[0] != n:
        raise CheckpointError(
            f"{where}: its output layer has {head.shape[0]} classes but the metadata says {n} "
            f"({classes})."
        )
    if expected is not None and expected != n:
        raise CheckpointError(f"{where} is a model of {n} classes ({classes}), not {expected}.")
    return n


def _check_metadata(metadata: dict, where: str) -> None:
    """CheckpointError naming ``where`` when a metadata entry that loading uses is missing or
    not what save_model writes (the classes are checked by :func:`_num_classes`)."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(
            f"{where}: its metadata lacks {', '.join(missing)}; save the model again with "
            "save_model."
        )
    recipe_from_metadata(metadata, where)
    if not isinstance(metadata["source_model"], str):
        raise CheckpointError(f"{where}: metadata source_model is not a str.")
    try:
        _test_acc(metadata["test_acc"])
    except ValueError as err:
        raise CheckpointError(f"{where}: metadata {err}") from None


def load_model(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    num_classes: int | None = None,
) -> tuple[nn.Module, dict]:
    """A fresh ResNet-18 with the weights saved at ``path``, on ``device`` in eval mode, and
    the checkpoint's metadata.

    ``num_classes``, when given, is what the caller expects. Raises CheckpointError naming the
    file when it is missing, not a torch file, a plain state_dict, of another format, when its
    metadata is missing an entry or holds an invalid one (classes, recipe, source model, test
    accuracy), when its classes, head and keys do not agree, or when a weight is not finite.
    """
    path = Path(path)
    where = display_path(path)
    payload = read_plain(path, "a d2lhelpers checkpoint (save_model writes them)")
    state, metadata = _checked_payload(payload, where)
    _check_metadata(metadata, where)
    n = _num_classes(state, metadata, where, num_classes)
    problems = _key_problems(state, n)
    if problems:
        raise CheckpointError(
            f"{where} does not fit {ARCHITECTURE}(num_classes={n}): {'; '.join(problems)}."
        )
    if non_finite := _non_finite(state):
        raise CheckpointError(
            f"{where}: weights {_listed(non_finite)} hold NaN or infinite values (a damaged "
            "file, or a model saved after training diverged); train and save it again."
        )
    net = resnet18(num_classes=n)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval(), metadata
