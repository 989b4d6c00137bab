"""Sweeps: tidy records, divergence, and the frozen-body feature path."""

from __future__ import annotations

import math

import pytest
import torch

from d2lhelpers.book.sweep_plots import live_figure, results_table
from d2lhelpers.data import HOTDOG_CLASSES, BatchLoader, decode_folder
from d2lhelpers.finetune import WEIGHT_DECAY
from d2lhelpers.models import find_head, freeze_body
from d2lhelpers.precision import choose_precision
from d2lhelpers.sweep import (
    RECORD_FIELDS,
    Sweeper,
    SweepSetting,
    TensorBatches,
    compute_features,
    final_records,
    frozen_body_of,
    records_by_run,
    seed_summary,
)
from d2lhelpers.train import fit

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sweeper(tiny_workspace) -> Sweeper:
    return Sweeper(tiny_workspace, batch_size=4, device=CPU)


@pytest.mark.parametrize(
    "kwargs",
    [{"learning_rate": 0}, {"learning_rate": -1}, {"learning_rate": 0.1, "head_multiplier": 0},
     {"learning_rate": 0.1, "num_epochs": 0}, {"learning_rate": float("nan")},
     {"learning_rate": float("inf")}, {"learning_rate": 0.1, "head_multiplier": float("nan")},
     {"learning_rate": 0.1, "head_multiplier": float("inf")},
     {"learning_rate": 0.1, "num_epochs": -1},
     {"learning_rate": 0.1, "num_epochs": 2.5}, {"learning_rate": 0.1, "freeze_body": "no"}],
)  # fmt: skip
def test_setting_rejects_bad_values(kwargs: dict) -> None:
    name = next(k for k in kwargs if k != "learning_rate" or len(kwargs) == 1)
    with pytest.raises(ValueError, match=f"{name} must be"):
        SweepSetting(**kwargs)


@pytest.mark.parametrize("batch_size", [0, 1, -3, 2.5, True])
def test_sweeper_rejects_bad_batch_size(tiny_workspace, batch_size) -> None:
    with pytest.raises(ValueError, match=f"batch_size must be an integer.*{batch_size!r}"):
        Sweeper(tiny_workspace, batch_size=batch_size, device=CPU)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_tensor_batches_rejects_bad_batch_size(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(torch.zeros(3, 2), torch.zeros(3), batch_size, shuffle=False)


def test_records_have_the_promised_fields(sweeper: Sweeper) -> None:
    settings = [SweepSetting(0.01, 10, num_epochs=2), SweepSetting(0.01, 2, 1, freeze_body=True)]
    seen = []
    records = sweeper.run(settings, on_run=lambda r: seen.append(len(r)), progress=False)
    assert seen == [2, 3]  # called after each run with all records so far
    assert len(records) == 3
    for record in records:
        assert tuple(record) == RECORD_FIELDS
        assert record["status"] == "ok"
        assert 0 <= record["val_acc"] <= 1
        assert math.isfinite(record["train_loss"])
        assert record["seconds"] > 0
    first = records[0]["run"]
    assert [r["run"] for r in records] == [first, first, first + 1]
    assert records[0]["head_lr"] == pytest.approx(0.1)
    assert records[2]["freeze_body"] is True and records[2]["augment"] is False
    assert records[0]["augment"] is True
    assert [r["epoch"] for r in final_records(records)] == [2, 1]
    # the test set is measured once per run, at its end
    assert [r["test_acc"] is None for r in records] == [True, False, False]
    assert all(0 <= r["test_acc"] <= 1 for r in final_records(records))


def test_divergence_is_recorded_not_raised(sweeper: Sweeper) -> None:
    records = sweeper.run([SweepSetting(1e6, 100, num_epochs=3)], progress=False)
    last = records[-1]
    assert last["status"].startswith("diverged at epoch")
    assert last["val_acc"] is None and last["train_acc"] is None and last["seconds"] is None
    assert all(r["test_acc"] is None for r in records)  # a diverged run is not tested
    for record in records:
        for key in ("train_loss", "train_acc", "val_acc", "test_acc", "seconds"):
            assert record[key] is None or math.isfinite(record[key])


def test_init_hotdog_row_copies_the_source_row_and_negates_it(sweeper: Sweeper) -> None:
    source_head = find_head(sweeper.source).layer
    row = sweeper.workspace.source_hotdog_class
    net = sweeper.target_model(SweepSetting(0.01, init_hotdog_row=True))
    assert torch.equal(net.fc.weight[0], source_head.weight[row])
    assert torch.equal(net.fc.bias[0], source_head.bias[row])
    assert torch.equal(net.fc.weight[1], -source_head.weight[row])
    assert torch.equal(net.fc.bias[1], -source_head.bias[row])
    plain = sweeper.target_model(SweepSetting(0.01))
    assert not torch.equal(plain.fc.weight[0], source_head.weight[row])


def test_target_model_draws_from_the_setting_seed_without_reseeding_globally(
    sweeper: Sweeper,
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = sweeper.target_model(SweepSetting(0.01, seed=0))
    assert torch.equal(torch.rand(3), expected_next)  # the global random state is untouched
    b = sweeper.target_model(SweepSetting(0.01, seed=0))
    c = sweeper.target_model(SweepSetting(0.01, seed=1))
    assert torch.equal(a.fc.weight, b.fc.weight)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_stop_ends_the_run_as_stopped_and_skips_later_settings(sweeper: Sweeper) -> None:
    calls = []

    def stop_after_two_batches() -> bool:
        calls.append(1)
        return len(calls) > 2

    settings = [SweepSetting(0.01, 10, num_epochs=3), SweepSetting(0.02, 10, num_epochs=1)]
    records = sweeper.run(settings, progress=False, should_stop=stop_after_two_batches)
    assert len({r["run"] for r in records}) == 1
    assert records[-1]["status"] == "stopped" and records[-1]["val_acc"] is None
    assert all(r["test_acc"] is None for r in records)


def test_on_progress_counts_the_batches_of_each_run(sweeper: Sweeper) -> None:
    seen = []
    settings = [SweepSetting(0.01, 10, num_epochs=2), SweepSetting(0.01, 10, 2, freeze_body=True)]
    sweeper.run(settings, progress=False, on_progress=lambda d, t: seen.append((d, t)))
    full, frozen = seen[: len(seen) // 2], seen[len(seen) // 2 :]
    for part in (full, frozen):
        total = part[0][1]
        assert [d for d, _ in part] == list(range(1, total + 1))
        assert all(t == total for _, t in part)


def test_seed_summary_aggregates_repeats_of_a_setting() -> None:
    def final(run, lr, seed, val, status="ok"):
        return {"run": run, "seed": seed, "learning_rate": lr, "head_multiplier": 10,
                "head_lr": 10 * lr, "num_epochs": 5, "freeze_body": False, "augment": True,
                "init_hotdog_row": False, "epoch": 5, "val_acc": val, "status": status}  # fmt: skip

    records = [final(0, 0.1, 0, 0.7), final(1, 0.1, 1, 0.8), final(2, 0.1, 2, None, "diverged"),
               final(3, 0.2, 0, 0.75)]  # fmt: skip
    first, second = seed_summary(records)
    assert first["seeds"] == [0, 1, 2] and first["failed"] == 1
    assert first["mean"] == pytest.approx(0.75)
    assert (first["low"], first["high"]) == (0.7, 0.8)
    assert second["mean"] == 0.75 and second["seeds"] == [0]


def test_frozen_features_match_training_through_the_frozen_body(tiny_workspace) -> None:
    """Training the head on cached features equals training it through the frozen body."""
    fp32 = choose_precision(CPU, "fp32")
    sweeper = Sweeper(tiny_workspace, batch_size=4, device=CPU)
    setting = SweepSetting(0.05, 10, num_epochs=2, freeze_body=True)
    recipe, root = tiny_workspace.recipe, tiny_workspace.root
    train = decode_folder(root / "train", recipe.resize_side, HOTDOG_CLASSES)
    test = decode_folder(root / "test", recipe.resize_side, HOTDOG_CLASSES)

    # Path 1: the whole frozen network on centre-cropped images, in a fixed order.
    net = freeze_body(sweeper.target_model(setting))
    optimizer = torch.optim.SGD(
        [p for p in net.parameters() if p.requires_grad],
        lr=0.5, weight_decay=WEIGHT_DECAY / 4,
    )  # fmt: skip
    through = fit(
        net, BatchLoader(train, 4, recipe, train=False, channels_last=False),
        BatchLoader(test, 8, recipe, train=False, channels_last=False), optimizer, 2,
        device=CPU, precision=fp32, progress=False,
    )  # fmt: skip

    # Path 2: features computed once, then only the head trains, in the same order.
    body = frozen_body_of(sweeper.source)
    xs = compute_features(body, BatchLoader(train, 8, recipe, train=False), fp32)
    ts = compute_features(body, BatchLoader(test, 8, recipe, train=False), fp32)
    head = find_head(sweeper.target_model(setting)).layer
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5, weight_decay=WEIGHT_DECAY / 4)
    cached = fit(
        head, TensorBatches(*xs, 4, shuffle=False), TensorBatches(*ts, 8, shuffle=False),
        optimizer, 2, device=CPU, precision=fp32, progress=False,
    )  # fmt: skip

    assert torch.allclose(head.weight, net.fc.weight, atol=1e-5)
    assert torch.allclose(head.bias, net.fc.bias, atol=1e-5)
    for a, b in zip(through.epochs, cached.epochs, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, abs=1e-5)
        assert a.held_out_acc == b.held_out_acc


def test_frozen_features_are_computed_once(sweeper: Sweeper, monkeypatch) -> None:
    sweeper.features()
    monkeypatch.setattr(
        "d2lhelpers.sweep.compute_features", lambda *a: pytest.fail("computed again")
    )
    records = sweeper.run([SweepSetting(0.01, 10, 1, freeze_body=True)] * 2, progress=False)
    assert len(records) == 2


def test_tensor_batches_cover_every_row_once() -> None:
    x = torch.arange(10).float()[:, None]
    batches = TensorBatches(x, torch.arange(10), 3, shuffle=True, seed=1)
    assert len(batches) == 4
    rows = torch.cat([xb[:, 0] for xb, _ in batches])
    assert sorted(rows.tolist()) == list(range(10))
    assert rows.tolist() != list(range(10))


def test_an_interrupted_run_ends_the_sweep_and_is_never_read_as_a_result(sweeper) -> None:
    calls = []

    def interrupt_in_the_second_epoch() -> bool:
        calls.append(1)
        if len(calls) > 4:  # the tiny split has fewer than four batches per epoch
            raise KeyboardInterrupt
        return False

    settings = [SweepSetting(0.01, 10, num_epochs=3), SweepSetting(0.02, 10, num_epochs=1)]
    records = sweeper.run(settings, progress=False, should_stop=interrupt_in_the_second_epoch)
    assert len({r["run"] for r in records}) == 1
    last = records[-1]
    assert last["status"] == "interrupted" and last["val_acc"] is None
    assert seed_summary(records)[0]["mean"] is None


def test_runs_of_several_sweeps_are_numbered_apart_and_all_shown(tiny_workspace) -> None:
    """Records of two sweeps on one Sweeper, put together, keep every run apart: the table has
    a row for each setting and the live figure a line for each run."""
    sweeper = Sweeper(tiny_workspace, batch_size=4, device=CPU)
    frozen = sweeper.run([SweepSetting(0.01, 10, 1, freeze_body=True)], progress=False)
    plain = sweeper.run([SweepSetting(0.01, 10, 1, augment=False)], progress=False)
    again = sweeper.run([SweepSetting(0.01, 100, 1, freeze_body=True)], progress=False)
    records = frozen + plain + again
    assert [r["run"] for r in final_records(records)] == [0, 1, 2]
    assert len(records_by_run(records)) == 3
    table = results_table(records)
    assert table.count("<tr") == 1 + 3  # the header and one row per setting
    assert len(live_figure(records).axes[0].lines) == 3
    panel_like = sweeper.run(
        [SweepSetting(0.01, 10, 1, freeze_body=True)], progress=False, first_run=0
    )
    assert panel_like[0]["run"] == 0  # a caller that numbers its own runs (the panel)
    assert sweeper.runs_started == 3
