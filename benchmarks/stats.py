"""The benchmark's statistics: trial results -> medians, spreads and paired ratios per size.

Every figure is a min / median / max over the repeats (a *spread*); a ratio pairs the two
sides' trials of the same repeat, which ran back to back from the same initial weights.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.trials import FROZEN_MULTIPLIERS

Result = dict[str, Any]


def spread(values: list[float]) -> dict[str, float]:
    """min / median / max of ``values``."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def train_rate(result: Result, skip: int = 0) -> float:
    """Training images/s over the epochs after the first ``skip``."""
    return sum(result["train_images"][skip:]) / sum(result["train_seconds"][skip:])


def paired(
    reference: list[Result], ours: list[Result], ratio: Callable[[Result, Result], float]
) -> dict[str, float]:
    """The spread of ``ratio(reference_trial, ours_trial)`` over the repeats."""
    return spread([ratio(ref, our) for ref, our in zip(reference, ours, strict=True)])


def has_later_epochs(trials: list[Result]) -> bool:
    """Whether every trial trained more than one epoch."""
    return all(len(trial["train_seconds"]) > 1 for trial in trials)


def side_summary(trials: list[Result]) -> dict[str, Any]:
    """Medians (and spreads) over the repeats of one side at one size."""
    evals = [seconds for trial in trials for seconds in trial["eval_seconds"]]
    peak_gpu = max((trial.get("peak_gpu_mib", 0.0) for trial in trials), default=0.0)
    return {
        "train_images_per_sec": spread([train_rate(trial) for trial in trials]),
        "train_images_per_sec_after_first_epoch": (
            spread([train_rate(trial, 1) for trial in trials]) if has_later_epochs(trials) else None
        ),
        "seconds_per_epoch": statistics.median(
            statistics.mean(trial["train_seconds"]) for trial in trials
        ),
        "eval_seconds_per_pass": statistics.median(evals) if evals else None,
        "wall_seconds": statistics.median(trial["wall_seconds"] for trial in trials),
        "peak_rss_mib": statistics.median(trial["peak_rss_mib"] for trial in trials),
        "rss_growth_mib": statistics.median(
            trial["peak_rss_mib"] - trial["rss_ready_mib"] for trial in trials
        ),
        "final_test_acc": [trial["test_acc"] for trial in trials],
        "status": [trial["status"] for trial in trials],
        "precision": trials[0]["precision"],
        "peak_gpu_mib": peak_gpu or None,
    }


def size_summary(reference: list[Result], ours: list[Result]) -> dict[str, Any]:
    """Both sides at one size, their paired ratios and their accuracy parity."""
    return {
        "reference": side_summary(reference),
        "ours": side_summary(ours),
        "ratio_train_images_per_sec": paired(
            reference, ours, lambda ref, our: train_rate(our) / train_rate(ref)
        ),
        "ratio_train_images_per_sec_after_first_epoch": (
            paired(reference, ours, lambda ref, our: train_rate(our, 1) / train_rate(ref, 1))
            if has_later_epochs(reference + ours)
            else None
        ),
        "ratio_wall_ref_over_ours": paired(
            reference, ours, lambda ref, our: ref["wall_seconds"] / our["wall_seconds"]
        ),
        "same_initial_weights": all(
            ref["init_digest"] == our["init_digest"]
            for ref, our in zip(reference, ours, strict=True)
        ),
        "accuracy": accuracy_parity(reference, ours),
    }


def accuracy_parity(reference: list[Result], ours: list[Result]) -> dict[str, Any] | None:
    """Final test accuracies: each side's mean and ours - reference, paired by repeat (seed).

    Repeats where either side has no accuracy are left out; None when none is left.
    """
    pairs = [
        (ref["test_acc"], our["test_acc"])
        for ref, our in zip(reference, ours, strict=True)
        if ref["test_acc"] is not None and our["test_acc"] is not None
    ]
    if not pairs:
        return None
    differences = [our - ref for ref, our in pairs]
    return {
        "reference_mean": statistics.mean(ref for ref, _ in pairs),
        "ours_mean": statistics.mean(our for _, our in pairs),
        "mean_difference": statistics.mean(differences),
        "difference": spread(differences),
        "seeds": len(pairs),
    }


def cache_summary(warmup: Result) -> dict[str, Any]:
    """Ours' one-off decode at one size, from its warm-up trial."""
    images = warmup["train_images"] + warmup["test_images"]
    build_seconds = warmup["train_build_seconds"] + warmup["test_build_seconds"]
    return {
        "train_stored_size": warmup["train_stored_size"],
        "test_stored_size": warmup["test_stored_size"],
        "build_seconds": build_seconds,
        "images": images,
        "train_bytes_per_image": warmup["train_bytes_per_image"],
        "test_bytes_per_image": warmup["test_bytes_per_image"],
        "cache_bytes": warmup["cache_bytes"],
        "images_per_sec": images / build_seconds,
    }


def frozen_summary(full: list[Result], fast: list[Result], size: int, epochs: int) -> Result:
    """The frozen-body sweep: the full network against the Sweeper, paired by repeat."""

    def ratio(denominator: str) -> dict[str, float]:
        return spread(
            [
                full_trial["wall_seconds"] / fast_trial[denominator]
                for full_trial, fast_trial in zip(full, fast, strict=True)
            ]
        )

    return {
        "size": size,
        "runs": len(FROZEN_MULTIPLIERS),
        "epochs": epochs,
        "head_multipliers": list(FROZEN_MULTIPLIERS),
        "full_seconds": spread([trial["wall_seconds"] for trial in full]),
        "sweeper_seconds": spread([trial["wall_seconds"] for trial in fast]),
        "sweeper_feature_seconds": spread([trial["feature_seconds"] for trial in fast]),
        "ratio_full_over_sweeper": ratio("wall_seconds"),
        "sweeper_cached_seconds": spread([trial["cached_wall_seconds"] for trial in fast]),
        "ratio_full_over_cached_sweeper": ratio("cached_wall_seconds"),
        "full_test_accs": full[0]["test_accs"],
        "sweeper_test_accs": fast[0]["test_accs"],
        "peak_rss_mib": {
            "full": statistics.median(trial["peak_rss_mib"] for trial in full),
            "sweeper": statistics.median(trial["peak_rss_mib"] for trial in fast),
        },
    }


def summarise(
    results: list[Result], sizes: list[int], frozen: tuple[int, int] | None
) -> dict[str, Any]:
    """Per size: both sides, paired ratios; the warm-ups' cache costs; the frozen sweep
    (``frozen``: its size and epochs, None when it was skipped)."""

    def of(kind: str, size: int) -> list[Result]:
        return sorted(
            (result for result in results if result["kind"] == kind and result["size"] == size),
            key=lambda result: result["repeat"],
        )

    by_size = {
        str(size): size_summary(of("reference", size), of("ours", size))
        for size in dict.fromkeys(sizes)
    }
    warmups = [result for result in results if result["kind"] == "warmup"]
    cache = {str(warmup["size"]): cache_summary(warmup) for warmup in warmups}
    summary: dict[str, Any] = {"sizes": by_size, "cache": cache, "frozen": None}
    if frozen is not None:
        size, epochs = frozen
        summary["frozen"] = frozen_summary(
            of("frozen-full", size), of("frozen-sweeper", size), size, epochs
        )
    return summary
