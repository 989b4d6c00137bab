"""Peak memory of building the decoded-image cache, against the size of the cache it builds.

Writes ``--photos`` JPEGs (``--width`` x ``--height``, half per class) into a fresh folder, then
in a fresh process measures the growth of the resident set size (RSS) while
``d2lhelpers.data.decode_folder`` decodes them at ``--side`` pixels into an empty cache and
loads it (the first decode of a page). Linux only (``/proc/self/status``).

    .venv/bin/python -m benchmarks.decode_memory --photos 1000 --side 512

``--package <folder holding d2lhelpers/>`` measures another version of the package, e.g. one
extracted with ``git archive <commit> d2lhelpers | tar -x -C /tmp/old``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("hotdog", "not-hotdog")


def write_photos(split: Path, count: int, width: int, height: int) -> None:
    """``count`` smooth random JPEGs, half per class (smooth: sizes like a photo's)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = split / CLASSES[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (height // 16, width // 16, 3), np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
        img.save(folder / f"{i:05d}.jpg", quality=90)


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(split: Path, side: int, cache: Path, package: str | None) -> dict:
    """In this process: RSS growth (peak) of one decode_folder call into an empty cache."""
    if package:
        sys.path.insert(0, package)
    from d2lhelpers.data import decode_folder

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    images = decode_folder(split, side, CLASSES, cache_dir=cache)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    cache_bytes = sum(p.stat().st_size for p in cache.iterdir() if p.suffix in {".npy", ".u8"})
    return {
        "images": len(images),
        "side": side,
        "cache_mib": cache_bytes / 2**20,
        "rss_growth_mib": (peak - before) / 1024,
        "ratio": (peak - before) * 1024 / cache_bytes,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--side", type=int, default=512, help="stored side (512: 224 training)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--folder", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--package", help="folder holding the d2lhelpers/ to measure")
    parser.add_argument("--child", nargs=2, metavar=("SPLIT", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        split, cache = (Path(arg) for arg in args.child)
        print(json.dumps(measure(split, args.side, cache, args.package)))
        return
    if args.photos < 2:
        parser.error(f"--photos must be at least 2, got {args.photos}")
    work = Path(args.folder or tempfile.mkdtemp(prefix="decode-memory-"))
    split, cache = work / "train", work / f"cache-{time.time_ns()}"
    if not split.is_dir():
        write_photos(split, args.photos, args.width, args.height)
    command = [sys.executable, "-m", "benchmarks.decode_memory", "--side", str(args.side)]
    command += ["--package", str(Path(args.package).resolve())] if args.package else []
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [*command, "--child", str(split), str(cache)], env=env, check=True, capture_output=True
    )
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    print(
        f"{result['images']} photos {args.width}x{args.height} at {result['side']} px: "
        f"cache {result['cache_mib']:.1f} MiB, peak RSS growth {result['rss_growth_mib']:.1f} MiB "
        f"= {result['ratio']:.2f}x the cache ({result['seconds']:.1f} s)"
    )
    import_check = [sys.executable, "-c", "import d2lhelpers; print(d2lhelpers.__file__)"]
    if args.package:
        import_check[2] = f"import sys; sys.path.insert(0, {args.package!r}); " + import_check[2]
    print("package:", subprocess.run(import_check, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
