"""Grad-CAM against known answers: hand-built models whose evidence lies in a known region,
then the bookkeeping (hooks, gradients, modes, devices) and the inputs the evaluation uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from d2lhelpers.data import BatchLoader, DecodedImages, Recipe
from d2lhelpers.gradcam import (
    CamResult,
    displayable,
    grad_cam,
    model_inputs,
    photo_input,
    pick_examples,
)
from d2lhelpers.photo import classify_photo
from d2lhelpers.predict import Predictions, logits_of

SIDE = 32
RECIPE = Recipe(SIDE)  # test images stored at 37 px


class Mask(nn.Module):
    """Zeroes a feature map outside rows ``rows`` and columns ``cols`` (feature cells)."""

    def __init__(self, rows: slice, cols: slice, cells: int) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, cells, cells)
        mask[..., rows, cols] = 1
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class RegionNet(nn.Module):
    """Convolutional features (stride 4: 8 x 8 cells of a 32 px input) seen only in one region
    by the pooled linear head: the logits depend on that region of the image alone."""

    def __init__(self, rows: slice, cols: slice) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 4, stride=4), nn.ReLU(inplace=True), Mask(rows, cols, SIDE // 4)
        )
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():  # every channel counts for class 0: its map cannot be all zero
            self.fc.weight.abs_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class ColourNet(nn.Module):
    """Class 0 is "more red than green", class 1 the opposite, counted over the whole image:
    Grad-CAM of class 0 must find the red patch, of class 1 the green one."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 2, 1, bias=False)
        head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])[..., None, None])
            head.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        self.layer4 = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4))  # 8 x 8 cells
        self.fc = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(x).mean((2, 3)))


def mass_in(maps: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """(N,) share of each map's total inside the pixel region."""
    return maps[:, rows, cols].sum((1, 2)) / maps.sum((1, 2))


def two_patches() -> torch.Tensor:
    """One image: a red 16 px square at the top left, a green one at the bottom right."""
    x = torch.zeros(1, 3, SIDE, SIDE)
    x[0, 0, :16, :16] = 1
    x[0, 1, 16:, 16:] = 1
    return x


QUADRANTS = {  # feature cells (of 8 x 8) -> pixels (of 32 x 32)
    "top left": ((slice(0, 4), slice(0, 4)), (slice(0, 16), slice(0, 16))),
    "bottom right": ((slice(4, 8), slice(4, 8)), (slice(16, 32), slice(16, 32))),
    "top right": ((slice(0, 4), slice(4, 8)), (slice(0, 16), slice(16, 32))),
}


@pytest.mark.parametrize("where", QUADRANTS)
def test_the_map_lies_where_the_logit_looks_and_moves_with_it(where: str) -> None:
    cells, pixels = QUADRANTS[where]
    net = RegionNet(*cells)
    x = torch.rand(3, 3, SIDE, SIDE)
    maps = grad_cam(net, x, target_class=0, layer=net.features).maps
    assert maps.shape == (3, SIDE, SIDE)
    assert (mass_in(maps, *pixels) > 0.9).all()
    for other, (_, elsewhere) in QUADRANTS.items():
        if other != where:  # the same maps do not pass for another region
            assert (mass_in(maps, *elsewhere) < 0.1).all()


def test_the_target_class_picks_the_channels() -> None:
    net, x = ColourNet(), two_patches()
    red, green = (slice(0, 16), slice(0, 16)), (slice(16, 32), slice(16, 32))
    for target, (inside, outside) in ((0, (red, green)), (1, (green, red))):
        maps = grad_cam(net, x, target).maps
        assert mass_in(maps, *inside) > 0.9 and mass_in(maps, *outside) < 0.05
        assert maps.amax() == 1.0


def test_none_explains_the_predicted_class_of_each_image() -> None:
    net = ColourNet()
    x = torch.cat([two_patches(), two_patches().flip(1)])  # red wins, then green wins
    x[0, 1] *= 0.5
    x[1, 0] *= 0.5
    result = grad_cam(net, x)
    assert isinstance(result, CamResult)
    assert result.target.tolist() == result.predicted.tolist() == [0, 1]
    assert torch.allclose(result.probabilities.sum(1), torch.ones(2))
    per_image = grad_cam(net, x, torch.tensor([0, 1])).maps
    assert torch.equal(per_image, result.maps)


def test_an_all_zero_map_stays_zero() -> None:
    maps = grad_cam(ColourNet(), torch.zeros(2, 3, SIDE, SIDE)).maps
    assert torch.equal(maps, torch.zeros(2, SIDE, SIDE))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (2, r"0 \.\. 1, got 2"),
        (-1, r"0 \.\. 1, got -1"),
        (torch.tensor([0, 2]), r"0 \.\. 1"),
        (1.0, "an int, a tensor or None, got 1.0"),
        (True, "got True"),
        ("hotdog", "got 'hotdog'"),
        (torch.tensor([0.0, 1.0]), "must hold integers"),
        (torch.tensor([0, 1, 1]), "one class or 2 classes"),
    ],
)
def test_bad_target_classes(target: object, message: str) -> None:
    net = ColourNet()
    with pytest.raises(ValueError, match=message):
        grad_cam(net, torch.rand(2, 3, SIDE, SIDE), target)
    assert not net.layer4._forward_hooks


class NoStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.unused = nn.Conv2d(3, 2, 3), nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


def test_bad_layers() -> None:
    x = torch.rand(1, 3, SIDE, SIDE)
    net = ColourNet()
    with pytest.raises(ValueError, match=r"one of the net's modules.*a Conv2d that is not"):
        grad_cam(net, x, layer=nn.Conv2d(3, 2, 1))
    with pytest.raises(ValueError, match=r"\(N, K, h, w\) feature maps, got \(1, 2\)"):
        grad_cam(net, x, layer=net.fc)
    with pytest.raises(ValueError, match="NoStage has no layer4: pass layer="):
        grad_cam(NoStage(), x)
    other = NoStage()
    with pytest.raises(ValueError, match="Conv2d ran 0 times"):
        grad_cam(other, x, layer=other.unused)
    assert not other.unused._forward_hooks and not net.fc._forward_hooks


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    net = resnet18(num_classes=2)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        net(torch.randn(4, 3, SIDE, SIDE) * 2 + 1)
    return net


@pytest.mark.parametrize("size", [32, 64])
def test_a_resnet_at_the_input_size(resnet: nn.Module, size: int) -> None:
    result = grad_cam(resnet, torch.randn(3, 3, size, size))
    assert result.maps.shape == (3, size, size) and result.logits.shape == (3, 2)
    assert result.maps.dtype == torch.float32 and result.maps.device.type == "cpu"
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    assert not result.maps.isnan().any()


def test_hooks_gradients_and_modes_are_left_as_they_were(resnet: nn.Module) -> None:
    resnet.train()
    resnet.layer2.eval()  # a mixed state, restored module by module
    resnet.fc.weight.grad = torch.full_like(resnet.fc.weight, 3.0)
    before = [(m, m.training) for m in resnet.modules()]
    x = torch.randn(2, 3, SIDE, SIDE)
    first = grad_cam(resnet, x)
    assert not resnet.layer4._forward_hooks and not resnet.layer4._backward_hooks
    assert [(m, m.training) for m in resnet.modules()] == before
    assert torch.equal(resnet.fc.weight.grad, torch.full_like(resnet.fc.weight, 3.0))
    assert all(p.grad is None for n, p in resnet.named_parameters() if not n.startswith("fc."))
    assert torch.equal(grad_cam(resnet, x).maps, first.maps)
    resnet.fc.weight.grad = None
    resnet.eval()


def test_no_grad_inference_mode_frozen_and_channels_last(resnet: nn.Module) -> None:
    x = torch.randn(2, 3, SIDE, SIDE)
    expected = grad_cam(resnet, x).maps
    with torch.no_grad():
        assert torch.equal(grad_cam(resnet, x).maps, expected)
    with torch.inference_mode():
        assert torch.equal(grad_cam(resnet, torch.clone(x)).maps, expected)
    frozen = resnet18(num_classes=2).eval()
    frozen.requires_grad_(False)
    assert grad_cam(frozen, x).maps.amax() > 0
    last = resnet18(num_classes=2).to(memory_format=torch.channels_last)
    plain = grad_cam(last, x).maps
    assert plain.amax() > 0
    assert torch.allclose(grad_cam(last, x.to(memory_format=torch.channels_last)).maps, plain)


def test_layers_by_name_and_the_last_stage_at_32_px(resnet: nn.Module) -> None:
    x = torch.randn(2, 3, SIDE, SIDE)
    by_name = grad_cam(resnet, x, layer="layer4.1").maps
    assert torch.equal(by_name, grad_cam(resnet, x, layer=resnet.layer4[1]).maps)
    last = grad_cam(resnet, x).maps  # layer4 sees 1 x 1 at 32 px: one value, a uniform map
    assert ((last.amax((1, 2)) - last.amin((1, 2))) < 1e-5).all()
    earlier = grad_cam(resnet, x, layer="layer2").maps  # 4 x 4
    assert ((earlier.amax((1, 2)) - earlier.amin((1, 2))) > 0.5).all()
    for name in ("layer9", ""):
        with pytest.raises(ValueError, match=f"ResNet has no module named '{name}'; its .* layer4"):
            grad_cam(resnet, x, layer=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda(resnet: nn.Module) -> None:
    net = resnet18(num_classes=2).cuda().to(memory_format=torch.channels_last)
    result = grad_cam(net, torch.randn(2, 3, 64, 64))  # moved to the net's device
    assert result.maps.shape == (2, 64, 64) and result.maps.device.type == "cpu"
    assert result.maps.amax() > 0 and not result.maps.isnan().any()
    assert not net.layer4._forward_hooks


def decoded(n: int = 6, side: int = 37) -> DecodedImages:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n) % 2
    return DecodedImages(pixels, labels, [f"{i}.png" for i in range(n)], ("hotdog", "not-hotdog"))


def test_model_inputs_are_the_test_loaders_batches() -> None:
    images = decoded()
    index = torch.tensor([4, 1])
    x = model_inputs(images, index, RECIPE)
    expected, _ = BatchLoader(images, 6, RECIPE, train=False).batch(index)
    assert torch.equal(x, expected) and x.shape == (2, 3, SIDE, SIDE)
    train_size = decoded(side=74)  # a training split is squashed to 37 first, as logits_of does
    assert model_inputs(train_size, [0], RECIPE).shape == (1, 3, SIDE, SIDE)


def test_cam_logits_are_the_evaluations(resnet: nn.Module) -> None:
    images = decoded()
    result = grad_cam(resnet, model_inputs(images, range(6), RECIPE))
    evaluated = logits_of(resnet, images, RECIPE)
    assert torch.allclose(result.logits, evaluated, atol=0.05)


@pytest.mark.parametrize(
    ("index", "message"),
    [([], "non-empty"), ([0.5], "integers"), ([6], r"0 \.\. 5, got \[6\]"), ([-7], "got")],
)
def test_model_inputs_refuse_bad_indices(index: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_inputs(decoded(), index, RECIPE)


def test_displayable_gives_back_the_centre_crop() -> None:
    images = decoded()
    pictures = displayable(model_inputs(images, [2], RECIPE), RECIPE)
    assert pictures.shape == (1, SIDE, SIDE, 3) and pictures.dtype == torch.float32
    crop = images.pixels[2, :, 2:34, 2:34].permute(1, 2, 0).float() / 255  # top = round(2.5)
    assert torch.allclose(pictures[0], crop, atol=1e-5)


def test_photo_input_is_what_classify_photo_sees(resnet: nn.Module) -> None:
    from PIL import Image

    photo = Image.fromarray(decoded(1, 50).pixels[0].permute(1, 2, 0).numpy())
    x = photo_input(photo, RECIPE)
    assert x.shape == (1, 3, SIDE, SIDE)
    _, _, probabilities = classify_photo(resnet, photo, RECIPE, ("hotdog", "not-hotdog"))
    assert torch.allclose(grad_cam(resnet, x).probabilities[0], probabilities, atol=0.02)


def predictions(correct: list[bool]) -> Predictions:
    labels = torch.zeros(len(correct), dtype=torch.int64)
    predicted = (~torch.tensor(correct)).long()
    probabilities = F.one_hot(predicted, 2).float()
    return Predictions(probabilities, labels, predicted, torch.zeros(len(correct)), ("a", "b"))


def test_pick_examples_takes_every_pattern_in_turn() -> None:
    first = predictions([True, True, True, False, True, False, True, True])
    second = predictions([True, False, True, False, False, True, True, True])
    # patterns: both right {0, 2, 6, 7}; first right only {1, 4}; second only {5}; none {3}
    assert pick_examples([first, second], 4).tolist() == [0, 1, 5, 3]
    assert pick_examples([first, second], 6).tolist() == [0, 7, 1, 4, 5, 3]
    assert sorted(pick_examples([first, second], 20).tolist()) == list(range(8))
    assert pick_examples([first], 3).tolist() == [0, 7, 3]


def test_pick_examples_refuses_other_splits() -> None:
    with pytest.raises(ValueError, match="same examples"):
        pick_examples([predictions([True]), predictions([True, False])])
    with pytest.raises(ValueError, match="n must be an integer of at least 1, got 0"):
        pick_examples([predictions([True])], 0)
