"""The benchmark's report: the run's set-up and summary as JSON, and as Markdown tables.

:func:`build_report` gathers the command, machine, versions, settings, data, summary (from
:mod:`benchmarks.stats`), method notes and raw trials; :func:`markdown` renders it, results
tables first; :func:`write_outputs` writes both files atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.stats import summarise
from benchmarks.trials import D2L_LEARNING_RATE, HEAD_MULTIPLIER, SIDES
from d2lhelpers.environment import PRECISION_ENV
from d2lhelpers.fileutil import atomic_write
from d2lhelpers.finetune import WEIGHT_DECAY
from d2lhelpers.machine import cpu_name, usable_cores

VERSIONED = ("torch", "torchvision", "d2l", "numpy", "pillow", "pandas", "scipy", "matplotlib")
ENV_RECORDED = (
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", PRECISION_ENV,
    "CUDA_VISIBLE_DEVICES",
)  # fmt: skip
NOTES = [
    "Each trial ran in a fresh subprocess; peak RSS is that process's ru_maxrss, imports included"
    " (d2l's pull in pandas, scipy and matplotlib); RSS growth is that peak minus the peak"
    " before the timed work (after imports and model creation): what data and training add.",
    "The sides alternated A/B then B/A per repeat; the ratio's min/median/max pair the two"
    " sides' trials of the same repeat.",
    "A warm-up subprocess per size built ours' decoded uint8 cache (its one-off cost is the"
    " cache table) and read every JPEG once; timed trials measure steady-state training and"
    " only load that cache.",
    "Training images/s = images trained / seconds of the full passes over the training loader"
    " (timed by one wrapper on both sides: loading, augmentation, forward, backward, step; for"
    " d2l also its plot updates); evaluation passes are timed separately. Wall time covers"
    " building the loaders, training and every evaluation, not model creation.",
    "d2l's own printed examples/sec times only its train_batch_ch13 calls (not data loading);"
    " it is kept in the JSON as d2l_reported_examples_per_sec.",
    "Repeat r (counted from 0) used seed --seed + r on both sides: within a repeat both sides"
    " start from identical weights (the saved source ResNet-18 with a new head drawn from that"
    " seed), so their final test accuracies can be compared; the repeats differ in the new head"
    " and in the shuffling and augmentation draws.",
    "Accuracy parity pairs the two sides' final test accuracies of the same repeat (seed). Even"
    " with the same seed the sides draw different batch orders and crops (d2l's DataLoader and"
    " PIL transforms versus ours' seeded generator) and ours runs in the precision shown, so a"
    " paired difference holds run-to-run noise as well as any systematic gap; its spread over"
    " the seeds shows which.",
]
Spread = dict[str, float]
RIGHT, LEFT = "---:", "---"  # Markdown column alignments


# --- the JSON report ---------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """Python's version and those of the packages the result depends on (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine(env_info: dict[str, Any], device: str) -> dict[str, Any]:
    """The machine, from this process and what a trial process saw (``env_info``)."""
    cores = usable_cores()
    return {
        "cpu": cpu_name(),
        "cpu_cores_usable": cores,
        "platform": platform.platform(),
        "device": device,
        "gpu": env_info.get("gpu"),
        "torch_threads": env_info["torch_threads"],
        "cpu_native_bf16": env_info["cpu_native_bf16"],
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "environment": {name: os.environ[name] for name in ENV_RECORDED if name in os.environ},
    }


def settings(args: argparse.Namespace, ours_precision: str) -> dict[str, Any]:
    """The run's settings, both sides' learning rates and weight decays included."""
    return {
        "sizes": list(dict.fromkeys(args.sizes)),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "seed": args.seed,
        "seeds": [args.seed + repeat for repeat in range(args.repeats)],
        "reference_workers": args.ref_workers,
        "ours_workers": 0,
        "reference_precision": "fp32",
        "ours_precision": ours_precision,
        "d2l_learning_rate": D2L_LEARNING_RATE,
        "ours_learning_rate": D2L_LEARNING_RATE * args.batch_size,
        "head_multiplier": HEAD_MULTIPLIER,
        "weight_decay": {"reference": 0.001, "ours": WEIGHT_DECAY / args.batch_size},
    }


def build_report(args: argparse.Namespace, data: dict, results: list[dict]) -> dict[str, Any]:
    """The whole report: set-up, summary, notes and every trial's raw result."""
    warm = next(result for result in results if result["kind"] == "warmup")
    frozen = None if args.skip_frozen else (args.frozen_size, args.frozen_epochs)
    return {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(warm, args.device),
        "versions": versions(),
        "settings": settings(args, warm["ours_precision"]),
        "data": data,
        "summary": summarise(results, args.sizes, frozen),
        "notes": NOTES,
        "trials": results,
    }


def write_outputs(report: dict[str, Any], out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir``, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    atomic_write(json_path, lambda f: f.write(json.dumps(report, indent=1).encode()))
    atomic_write(md_path, lambda f: f.write(markdown(report).encode()))
    return json_path, md_path


# --- the Markdown report -----------------------------------------------------------------------


def fmt_spread(values: Spread | None, digits: int = 1) -> str:
    """``min / median / max``, or a dash."""
    if values is None:
        return "-"
    return " / ".join(f"{values[key]:.{digits}f}" for key in ("min", "median", "max"))


def fmt_median(values: Spread | None) -> str:
    return "-" if values is None else f"{values['median']:.1f}"


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_accs(values: list[float | None], statuses: list[str]) -> str:
    """Distinct final accuracies; any run that did not end "ok" is named."""
    shown = sorted({f"{value:.3f}" for value in values if value is not None})
    shown += sorted({status for status in statuses if status != "ok"})
    return " / ".join(shown) if shown else "-"


def fmt_seeds(seeds: list[int]) -> str:
    """One seed, or the first and last of a range."""
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def table(
    columns: list[tuple[str, str]], rows: list[list[str]], title: str | None = None
) -> list[str]:
    """A Markdown table after a blank line (and the section ``title``, if any); ``columns`` are
    (header, alignment) pairs, the alignment ``RIGHT`` or ``LEFT``."""
    head = ["", *([f"## {title}", ""] if title else [])]
    header, alignment = ([column[i] for column in columns] for i in (0, 1))
    return [*head, table_row(header), table_row(alignment), *map(table_row, rows)]


def table_row(cells: list[str]) -> str:
    """``| a | b |``; an empty cell is ``| |``."""
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: results tables first, then the set-up."""
    summary = report["summary"]
    lines = [
        "# Fine-tuning benchmark: d2l 1.0.3 (reference) vs d2lhelpers (ours)",
        "",
        f"`{report['command']}` — finished {report['finished']}",
    ]
    lines += markdown_throughput(summary["sizes"]) + markdown_ratios(summary["sizes"])
    lines += markdown_parity(summary["sizes"])
    lines += markdown_cache(summary["cache"]) + markdown_frozen(summary["frozen"])
    lines += [*markdown_setup(report), "", "## Method", ""]
    lines += [f"* {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def throughput_row(size: str, side: str, one: dict[str, Any]) -> list[str]:
    """One side at one size: speeds, times, memory, accuracies, precision."""
    return [
        size,
        side,
        fmt_spread(one["train_images_per_sec"]),
        fmt_median(one["train_images_per_sec_after_first_epoch"]),
        f"{one['seconds_per_epoch']:.2f}",
        fmt_number(one["eval_seconds_per_pass"]),
        f"{one['wall_seconds']:.1f}",
        f"{one['peak_rss_mib']:.0f}",
        f"{one['rss_growth_mib']:.0f}",
        fmt_accs(one["final_test_acc"], one["status"]),
        one["precision"],
    ]


def markdown_throughput(sizes: dict[str, Any]) -> list[str]:
    """Both sides' speeds, times, memory and accuracies per size."""
    columns = [
        ("size", RIGHT), ("side", LEFT), ("train img/s (min / med / max)", RIGHT),
        ("after epoch 1 (med)", RIGHT), ("s/epoch (train)", RIGHT), ("eval s/pass", RIGHT),
        ("wall s", RIGHT), ("peak RSS MiB", RIGHT), ("RSS growth MiB", RIGHT),
        ("final test acc", RIGHT), ("precision", LEFT),
    ]  # fmt: skip
    rows = [throughput_row(size, side, row[side]) for size, row in sizes.items() for side in SIDES]
    title = "Training throughput (medians over repeats; min / median / max where shown)"
    return table(columns, rows, title)


def markdown_ratios(sizes: dict[str, Any]) -> list[str]:
    """Ours against the reference per size, paired by repeat."""
    columns = [
        ("size", RIGHT), ("ours / reference, train img/s (min / med / max)", RIGHT),
        ("the same after the first epoch", RIGHT), ("reference / ours, wall time", RIGHT),
        ("same initial weights", LEFT),
    ]  # fmt: skip
    rows = [
        [
            size,
            f"**{fmt_spread(row['ratio_train_images_per_sec'], 2)}**",
            fmt_spread(row["ratio_train_images_per_sec_after_first_epoch"], 2),
            fmt_spread(row["ratio_wall_ref_over_ours"], 2),
            "yes" if row["same_initial_weights"] else "NO",
        ]
        for size, row in sizes.items()
    ]
    return table(columns, rows)


def parity_row(size: str, acc: dict[str, Any] | None) -> list[str]:
    """One size's accuracy parity; dashes and 0 seeds when no repeat has both accuracies."""
    if acc is None:
        return [size, "-", "-", "-", "-", "0"]
    points = {key: 100 * value for key, value in acc["difference"].items()}
    return [
        size, f"{acc['reference_mean']:.3f}", f"{acc['ours_mean']:.3f}",
        f"{100 * acc['mean_difference']:+.1f}", fmt_spread(points), str(acc["seeds"]),
    ]  # fmt: skip


def markdown_parity(sizes: dict[str, Any]) -> list[str]:
    """Each side's mean final test accuracy and their paired differences per size."""
    columns = [
        ("size", RIGHT), ("reference mean", RIGHT), ("ours mean", RIGHT),
        ("mean difference, points", RIGHT),
        ("paired differences, points (min / med / max)", RIGHT), ("seeds", RIGHT),
    ]  # fmt: skip
    rows = [parity_row(size, row["accuracy"]) for size, row in sizes.items()]
    title = "Accuracy parity (final test accuracy; ours - reference paired by seed)"
    return table(columns, rows, title)


def markdown_cache(cache: dict[str, Any]) -> list[str]:
    """Ours' decoded caches: sizes, build time and bytes per size."""
    columns = [
        ("size", RIGHT), ("stored px, train / test", RIGHT), ("images", RIGHT),
        ("build s", RIGHT), ("images/s", RIGHT), ("bytes/image, train / test", RIGHT),
        ("cache MiB", RIGHT),
    ]  # fmt: skip
    rows = [
        [
            size,
            f"{row['train_stored_size']} / {row['test_stored_size']}",
            str(row["images"]),
            f"{row['build_seconds']:.1f}",
            f"{row['images_per_sec']:.0f}",
            f"{row['train_bytes_per_image']:,} / {row['test_bytes_per_image']:,}",
            f"{row['cache_bytes'] / 2**20:.1f}",
        ]
        for size, row in cache.items()
    ]
    return table(columns, rows, "Ours' one-off decode (warm-up, not in the timings above)")


def fmt_accs_list(accs: list[float]) -> str:
    """Accuracies to three places, comma-separated."""
    return ", ".join(f"{acc:.3f}" for acc in accs)


def markdown_frozen(frozen: dict[str, Any] | None) -> list[str]:
    """The frozen-body sweep's two methods and their speed-ups, or a line saying it was skipped."""
    if frozen is None:
        return ["", "Frozen-body sweep: skipped (`--skip-frozen`)."]
    multipliers = ", ".join(f"{factor:g}" for factor in frozen["head_multipliers"])
    title = (
        f"Frozen-body sweep ({frozen['runs']} runs, epochs per run: {frozen['epochs']}, "
        f"{frozen['size']} px, head x {multipliers})"
    )
    columns = [
        ("method", LEFT), ("seconds (min / med / max)", RIGHT), ("peak RSS MiB", RIGHT),
        ("final test accs", LEFT),
    ]  # fmt: skip
    features = frozen["sweeper_feature_seconds"]["median"]
    rows = [
        [
            "full frozen network every batch", fmt_spread(frozen["full_seconds"]),
            f"{frozen['peak_rss_mib']['full']:.0f}", fmt_accs_list(frozen["full_test_accs"]),
        ],
        [
            f"Sweeper on cached features (features: {features:.1f} s)",
            fmt_spread(frozen["sweeper_seconds"]), f"{frozen['peak_rss_mib']['sweeper']:.0f}",
            fmt_accs_list(frozen["sweeper_test_accs"]),
        ],
        [
            "the same sweep again, features already cached (the panel's next click)",
            fmt_spread(frozen["sweeper_cached_seconds"], 2), "", "",
        ],
    ]  # fmt: skip
    return [
        *table(columns, rows, title),
        "",
        f"Speed-up of the Sweeper (full / Sweeper), the one-off feature pass included: "
        f"**{fmt_spread(frozen['ratio_full_over_sweeper'], 1)}**; with the features already "
        f"cached: **{fmt_spread(frozen['ratio_full_over_cached_sweeper'], 0)}**.",
    ]


def markdown_setup(report: dict[str, Any]) -> list[str]:
    """Machine, versions, environment, data and training settings."""
    host, data, run = report["machine"], report["data"], report["settings"]
    versions_text = ", ".join(f"{name} {version}" for name, version in report["versions"].items())
    return [
        "",
        "## Set-up",
        "",
        f"* Machine: {host['cpu']}, {host['cpu_cores_usable']} usable cores, torch threads "
        f"{host['torch_threads']}, device {host['device']}"
        + (f" ({host['gpu']})" if host["gpu"] else "")
        + f", native bf16 on the CPU: {host['cpu_native_bf16']}; load average at start "
        f"{host['load_average_at_start']}.",
        f"* Versions: {versions_text}.",
        f"* Environment variables: {host['environment'] or 'none of ' + ', '.join(ENV_RECORDED)}.",
        f"* Data: {data['train_images']} training + {data['test_images']} test JPEGs "
        f"(sides {data['side_range_px'][0]}-{data['side_range_px'][1]} px, quality "
        f"{data['jpeg_quality']}, {data['jpeg_bytes_total'] / 2**20:.1f} MiB) in "
        f"`{data['root']}`.",
        f"* Training: epochs {run['epochs']}, batch {run['batch_size']}, "
        f"repeats {run['repeats']} (seeds {fmt_seeds(run['seeds'])}, the same for both "
        f"sides within a repeat); DataLoader workers: "
        f"reference {run['reference_workers']}, ours {run['ours_workers']} (in-process "
        f"batched augmentation); precision: reference {run['reference_precision']}, ours "
        f"{run['ours_precision']}.",
        f"* Steps: reference lr {run['d2l_learning_rate']:g} on a summed loss, weight decay "
        f"{run['weight_decay']['reference']:g}; ours lr {run['ours_learning_rate']:g} "
        f"on the mean loss, weight decay {run['weight_decay']['ours']:g} (the same SGD "
        f"steps); head x {run['head_multiplier']:g}.",
    ]
