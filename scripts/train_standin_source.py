"""Train the stand-in source model ahead of time and write it into the package.

``make standin-model`` runs this: it draws the synthetic source set (18 classes, 1,000 training
images each) into the data folder, trains a ResNet-18 on it with
:class:`~d2lhelpers.standin.SourceTraining`'s seeded settings, prints the test accuracy per
epoch, and writes the checkpoint (float16 weights, about 22 MB) atomically to
``d2lhelpers/modeldata/standin-resnet18.pt``. The pages then load it as they would load
ImageNet weights. On a 2-core CPU it takes about 10 minutes; the chapter reports the time, the
machine and the accuracy this run recorded in the checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from d2lhelpers.fileutil import data_dir
from d2lhelpers.standin import SHIPPED_SOURCE, save_source_checkpoint, train_source_checkpoint
from d2lhelpers.train import History


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_SOURCE, help="checkpoint to write")
    args = parser.parse_args()
    checkpoint = train_source_checkpoint(data_dir())
    history = History.from_dict(checkpoint["history"])
    accuracies = ", ".join(f"{epoch.held_out_acc:.3f}" for epoch in history.epochs)
    print(f"source test accuracy per epoch: {accuracies}")
    print(f"trained in {checkpoint['build_seconds']:.0f} s on {checkpoint['built_on']}")
    save_source_checkpoint(checkpoint, args.out)
    print(f"wrote {args.out} (key {checkpoint['key']})")


if __name__ == "__main__":
    main()
