"""A small hot dog folder of real photos, and a stand-in for the ImageNet weights, for checks.

The notebooks' real branch (``ws.kind == "real"``) needs the hot dog photos and torchvision's
ImageNet weights, neither of which can be downloaded offline. This module makes both from what
a package registry can give:

* The photos are files that PyPI wheels ship (scikit-image's ``skimage/data``, scikit-learn's
  sample images, matplotlib's sample data, imgaug's quokka, mahotas' demo photos), read
  straight from the wheel zips (nothing is installed). The wheels are pinned by file name and
  SHA-256 (:data:`WHEELS`): pip downloads them with ``--require-hashes`` for a fixed platform
  (so every host gets the same files), and a cached wheel is checked again before use.
* The photos keep their awkward formats (grayscale and 16-bit-free PNGs, EXIF and ICC
  profiles, a tiny animated palette GIF); crops of the large ones are written in the formats
  that :func:`d2lhelpers.images.load_rgb` must convert (16-bit grayscale, alpha, palette, EXIF
  rotation, CMYK, progressive JPEG, TIFF, WebP, BMP), to make a few dozen photos.
* Each photo goes to one of ``hotdog/{train,test}/{hotdog,not-hotdog}`` by the SHA-256 of its
  name, round robin, so the assignment is deterministic and balanced (the labels mean nothing:
  the check runs the code paths, not the lesson).
* :func:`verified_hotdog_folder` zips them and extracts the zip with the package's own
  :func:`~d2lhelpers.download.extract_zip`, which records its manifest: ``prepare("real")``
  then finds a folder its own extraction verified, and never needs ``hotdog.zip`` (whose SHA-1
  stays enforced for every download, mirror and zip placed by hand).
* :func:`place_weights` saves a seeded, randomly initialised ResNet-18 under torchvision's
  file name for ``ResNet18_Weights.IMAGENET1K_V1`` in ``$TORCH_HOME/hub/checkpoints``;
  torchvision checks the hash in that name only when it downloads, not for a file already there.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

WHEEL_CACHE_NAME = "real-photos-wheels"
FOLDERS = ("train/hotdog", "train/not-hotdog", "test/hotdog", "test/not-hotdog")
# pip downloads the wheels for this target, whatever the host, so the pinned files are found.
PIP_TARGET = (
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
    "--platform", "any",
)  # fmt: skip
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str


WHEELS = (
    Wheel(
        "scikit-image",
        "0.26.0",
        "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    ),
    Wheel(
        "scikit-learn",
        "1.9.1",
        "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
    ),
    Wheel(
        "matplotlib",
        "3.11.2",
        "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
    ),
    Wheel(
        "imgaug",
        "0.4.0",
        "imgaug-0.4.0-py2.py3-none-any.whl",
        "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9",
    ),
    Wheel(
        "mahotas",
        "1.4.18",
        "mahotas-1.4.18-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "8f4a41dd3b49bc2e5240b265b9ab35a6793c20ddcb3b392f3ba27a0940086de6",
    ),
)

# The photos, as shipped (synthetic pictures, logos and clip art are left out).
_SKIMAGE_PHOTOS = """
    astronaut.png brick.png camera.png cell.png chelsea.png clock_motion.png coffee.png coins.png
    grass.png gravel.png hubble_deep_field.jpg ihc.png microaneurysms.png moon.png
    motorcycle_left.png motorcycle_right.png page.png retina.jpg rocket.jpg text.png
    no_time_for_that_tiny.gif
"""
PHOTOS = {
    "scikit-image": tuple(f"skimage/data/{name}" for name in _SKIMAGE_PHOTOS.split()),
    "scikit-learn": ("sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg"),
    "matplotlib": ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",),
    "imgaug": ("imgaug/quokka.jpg",),
    "mahotas": (
        "mahotas/demos/data/DepartmentStore.jpg",
        "mahotas/demos/data/luispedro.jpg",
        "mahotas/demos/data/nuclear.png",
    ),
}
# Large photos cut into a grid of (columns, rows) crops, each crop written in another format.
TILED = (
    ("scikit-image", "skimage/data/retina.jpg", (2, 2)),
    ("mahotas", "mahotas/demos/data/nuclear.png", (2, 1)),
    ("mahotas", "mahotas/demos/data/DepartmentStore.jpg", (2, 1)),
    ("scikit-image", "skimage/data/hubble_deep_field.jpg", (2, 1)),
    ("imgaug", "imgaug/quokka.jpg", (2, 1)),
    ("scikit-image", "skimage/data/motorcycle_left.png", (2, 1)),
    ("scikit-learn", "sklearn/datasets/images/china.jpg", (2, 1)),
    ("scikit-learn", "sklearn/datasets/images/flower.jpg", (2, 1)),
    ("scikit-image", "skimage/data/coffee.png", (2, 1)),
)


class WheelsUnavailable(RuntimeError):
    """The pinned wheels are neither cached nor downloadable."""


# --------------------------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------------------------


def default_wheel_cache() -> Path:
    """``$D2LHELPERS_DATA/real-photos-wheels`` (``make`` sets it to ``.data``, which git
    ignores), else ``~/.cache/d2lhelpers/real-photos-wheels``."""
    base = os.environ.get("D2LHELPERS_DATA") or Path.home() / ".cache" / "d2lhelpers"
    return Path(base).expanduser() / WHEEL_CACHE_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_wheels(cache: Path) -> dict[str, Path] | None:
    """The pinned wheels in ``cache`` by project, when all are there with their SHA-256."""
    paths = {w.project: cache / w.filename for w in WHEELS}
    for wheel in WHEELS:
        path = paths[wheel.project]
        if not path.is_file() or sha256_of(path) != wheel.sha256:
            return None
    return paths


def fetch_wheels(cache: Path | None = None, timeout: float = 600) -> dict[str, Path]:
    """The pinned wheels by project: from ``cache``, else downloaded into it by pip
    (``--no-deps --require-hashes``). Raises WheelsUnavailable when pip cannot get them."""
    cache = Path(cache or default_wheel_cache())
    if (paths := cached_wheels(cache)) is not None:
        return paths
    cache.mkdir(parents=True, exist_ok=True)
    for wheel in WHEELS:  # a file with another hash is not the pinned one
        path = cache / wheel.filename
        if path.is_file() and sha256_of(path) != wheel.sha256:
            path.unlink()
    lines = [f"{w.project}=={w.version} --hash=sha256:{w.sha256}\n" for w in WHEELS]
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(lines))
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--timeout", "30", "--retries", "1"]  # offline: fail in a minute or so
        command += [*PIP_TARGET, "--require-hashes", "-r", str(requirements), "-d", str(cache)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise WheelsUnavailable(f"pip download failed: {err}") from err
    if done.returncode != 0 or (paths := cached_wheels(cache)) is None:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise WheelsUnavailable(
            f"could not download the pinned wheels into {cache} (pip exit {done.returncode}):\n"
            f"{tail}"
        )
    return paths


# --------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------


def _stem(member: str) -> str:
    return PurePosixPath(member).stem.replace("_", "-").lower()


def _gray16_png(img: Image.Image) -> tuple[str, bytes]:
    arr = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return _saved(Image.fromarray(arr), "png", "gray16.png")


def _alpha_png(img: Image.Image) -> tuple[str, bytes]:
    rgba = img.convert("RGBA")
    w, h = rgba.size
    ramp = np.linspace(32, 255, w, dtype=np.float64)[None, :].repeat(h, axis=0)
    rgba.putalpha(Image.fromarray(ramp.astype(np.uint8)))
    return _saved(rgba, "png", "alpha.png")


def _gray_alpha_png(img: Image.Image) -> tuple[str, bytes]:
    la = img.convert("LA")
    w, h = la.size
    ramp = np.linspace(255, 64, h, dtype=np.float64)[:, None].repeat(w, axis=1)
    la.putalpha(Image.fromarray(ramp.astype(np.uint8)))
    return _saved(la, "png", "gray-alpha.png")


def _palette_png(img: Image.Image) -> tuple[str, bytes]:
    palette = img.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.info["transparency"] = 0
    return _saved(palette, "png", "palette.png", transparency=0)


def _exif_rotated_jpeg(img: Image.Image) -> tuple[str, bytes]:
    """Pixels stored turned 90 degrees, with EXIF orientation 6 saying how to turn them back."""
    stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _saved(stored, "jpeg", "exif-rotated.jpg", exif=exif.tobytes(), quality=90)


def _cmyk_jpeg(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img.convert("CMYK"), "jpeg", "cmyk.jpg", quality=90)


def _progressive_jpeg(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img, "jpeg", "progressive.jpg", quality=85, progressive=True, optimize=True)


def _gray_jpeg(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img.convert("L"), "jpeg", "gray.jpg", quality=90)


def _tiff(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img, "tiff", "lzw.tif", compression="tiff_lzw")


def _webp(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img, "webp", "lossy.webp", quality=80, method=4)


def _bmp(img: Image.Image) -> tuple[str, bytes]:
    return _saved(img, "bmp", "plain.bmp")


TILE_FORMATS: tuple[Callable[[Image.Image], tuple[str, bytes]], ...] = (
    _gray16_png, _exif_rotated_jpeg, _alpha_png, _cmyk_jpeg, _palette_png, _progressive_jpeg,
    _gray_alpha_png, _tiff, _webp, _gray_jpeg, _bmp,
)  # fmt: skip


def _saved(img: Image.Image, fmt: str, suffix: str, **options) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return suffix, buffer.getvalue()


def _tiles(img: Image.Image, grid: tuple[int, int]) -> list[Image.Image]:
    columns, rows = grid
    w, h = img.size
    return [
        img.crop((c * w // columns, r * h // rows, (c + 1) * w // columns, (r + 1) * h // rows))
        for r in range(rows)
        for c in range(columns)
    ]


def photo_files(wheels: dict[str, Path]) -> dict[str, bytes]:
    """Every photo's file name and bytes: the shipped files as they are, then the crops."""
    files: dict[str, bytes] = {}
    for project, members in PHOTOS.items():
        with zipfile.ZipFile(wheels[project]) as zf:
            for member in members:
                files[f"{project}-{_stem(member)}{PurePosixPath(member).suffix}"] = zf.read(member)
    index = 0
    for project, member, grid in TILED:
        with (
            zipfile.ZipFile(wheels[project]) as zf,
            Image.open(io.BytesIO(zf.read(member))) as shipped,
        ):
            img = shipped.convert("RGB")
        for i, tile in enumerate(_tiles(img, grid)):
            suffix, data = TILE_FORMATS[index % len(TILE_FORMATS)](tile)
            files[f"{project}-{_stem(member)}-crop{i}-{suffix}"] = data
            index += 1
    return files


def assignment(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Each file name's folder (one of :data:`FOLDERS`): in the order of the SHA-256 of the
    names, round robin, so the folders' sizes differ by one at most."""
    ordered = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return {name: FOLDERS[i % len(FOLDERS)] for i, name in enumerate(ordered)}


def hotdog_zip(files: dict[str, bytes]) -> bytes:
    """A zip laid out like d2l's ``hotdog.zip`` (``hotdog/{train,test}/{class}/``), byte for byte
    the same for the same files."""
    folders = assignment(list(files))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(files, key=lambda n: (folders[n], n)):
            info = zipfile.ZipInfo(f"hotdog/{folders[name]}/{name}", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name], compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def verified_hotdog_folder(data_dir: Path, wheels: dict[str, Path]) -> Path:
    """``data_dir/hotdog``, extracted by the package's own :func:`extract_zip` from a zip of the
    photos (which is then deleted), so that it carries the package's extraction manifest."""
    return extract_verified(data_dir, hotdog_zip(photo_files(wheels)))


def extract_verified(data_dir: Path, archive_bytes: bytes) -> Path:
    """``data_dir/hotdog``, extracted by the package's own :func:`extract_zip` from
    ``archive_bytes`` (a :func:`hotdog_zip`, written beside it and then deleted)."""
    from d2lhelpers.download import extract_zip, extraction_problem

    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / "real-photos.zip"  # not hotdog.zip: that name must be d2l's file
    archive.write_bytes(archive_bytes)
    try:
        root = extract_zip(archive, data_dir, "hotdog")
    finally:
        archive.unlink()
    if (problem := extraction_problem(root)) is not None:
        raise RuntimeError(f"the extracted fixture does not verify: {problem}")
    return root


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def weights_file_name() -> str:
    """torchvision's file name for ResNet-18's ImageNet weights (``resnet18-<hash>.pth``)."""
    from torchvision.models import ResNet18_Weights

    return PurePosixPath(ResNet18_Weights.IMAGENET1K_V1.url).name


def place_weights(torch_home: Path, calibrate: Sequence[Path] = (), seed: int = 0) -> Path:
    """Save a randomly initialised ResNet-18 (``seed``) at
    ``torch_home/hub/checkpoints/<weights_file_name()>`` and return the path.

    ``calibrate``: photos run through the network in training mode first (no gradients), so its
    BatchNorm statistics are those of real photos rather than 0 and 1, as trained ones would be;
    otherwise the 1,000 logits of a random network in evaluation mode are far out of scale.
    """
    import torch
    from torchvision.models import resnet18

    from d2lhelpers.data import IMAGENET_MEAN, IMAGENET_STD
    from d2lhelpers.images import load_rgb

    torch.manual_seed(seed)
    net = resnet18(weights=None)
    if calibrate:
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        pixels = [
            np.asarray(load_rgb(p).resize((224, 224), Image.Resampling.BILINEAR)) for p in calibrate
        ]
        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # a cumulative average over the batches
        net.train()
        with torch.no_grad():
            for chunk in batch.sub(mean).div(std).split(8):
                net(chunk)
    path = Path(torch_home) / "hub" / "checkpoints" / weights_file_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
