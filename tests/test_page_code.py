"""The lesson's lines on the pages do what the package's general helpers do for ResNet-18.

The pages show the recipe's lines (new output layer, row copy) as a learner writes them; the
package's helpers do the same for any torchvision classifier. These tests run the pages' own
cells against the helpers, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import copy

import nbformat
import torch
import torchvision
from book_site import ROOT
from torch import nn

from d2lhelpers.models import copy_class_row, make_target_model


def cell_defining(notebook: str, text: str) -> str:
    cells = nbformat.read(ROOT / "chapters" / notebook, as_version=4).cells
    (source,) = [c.source for c in cells if c.cell_type == "code" and text in c.source]
    return source


def function_in(source: str, name: str) -> str:
    """The source of the function ``name`` that ``source`` defines, without the rest."""
    (node,) = [n for n in ast.parse(source).body if getattr(n, "name", None) == name]
    return ast.get_source_segment(source, node)


def test_the_chapters_new_output_layer_is_make_target_model() -> None:
    source = cell_defining("fine-tuning.ipynb", "def new_finetune_net")
    pretrained = torchvision.models.resnet18(num_classes=7)
    names = {"copy": copy, "torch": torch, "nn": nn, "pretrained_net": pretrained}
    exec(function_in(source, "new_finetune_net"), names)  # only the function
    for seed in (0, 1):
        page = names["new_finetune_net"](seed)
        torch.manual_seed(seed)
        helper = make_target_model(pretrained, 2)
        assert page.state_dict().keys() == helper.state_dict().keys()
        for key, value in helper.state_dict().items():
            assert torch.equal(page.state_dict()[key], value), key
    assert not torch.equal(names["new_finetune_net"](0).fc.weight, helper.fc.weight)


def test_exercise_4s_row_copy_is_copy_class_row_with_the_other_row_negated() -> None:
    source = cell_defining("exercises.ipynb", "row_net.fc.weight[1] = -")
    source_net = torchvision.models.resnet18(num_classes=7)
    names = {
        "torch": torch, "make_target_model": make_target_model, "k": 3,
        "source_net": source_net,
        "ws": type("ws", (), {"source_model": staticmethod(lambda: copy.deepcopy(source_net))}),
    }  # fmt: skip
    torch.manual_seed(0)
    exec(source, names)
    torch.manual_seed(0)
    helper = make_target_model(source_net, 2)
    copy_class_row(helper, source_net, 3, 0, other_row_negated=True)
    assert torch.equal(names["row_net"].fc.weight, helper.fc.weight)
    assert torch.equal(names["row_net"].fc.bias, helper.fc.bias)
