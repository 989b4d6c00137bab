"""The command line with faults injected, for tests/test_distributed.py to run under torchrun.

Environment variables that only the tests set (the user's command has no such options):

* ``D2LHELPERS_TEST_FAIL=RANK:BATCHES:MODE``: that rank fails after that many batches, by
  exiting (``exit``, status 3), raising (``raise``), hanging (``hang``) or stopping itself
  (``stop``: SIGSTOP, after printing the time);
* ``D2LHELPERS_TEST_SAVE_EVERY_RANK=PATH``: every rank saves its trained weights to
  ``PATH.rank<k>``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time

import torch

from d2lhelpers import cli

RANK = int(os.environ.get("RANK", "0"))


def failing_after(batches: int, mode: str):
    """A callback after every batch that makes this rank fail after ``batches`` of them."""
    done = 0

    def on_batch(_: int) -> None:
        nonlocal done
        done += 1
        if done < batches:
            return
        print(f"rank {RANK}: failing after {done} batches, as the test asked", file=sys.stderr)
        sys.stderr.flush()
        if mode == "exit":
            os._exit(3)
        if mode == "hang":
            time.sleep(3600)
        if mode == "stop":
            print(f"rank {RANK}: stopping at {time.time():.3f}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        raise RuntimeError(f"rank {RANK} fails after {done} batches, as the test asked")

    return on_batch


def with_faults(train_fine_tuning):
    """``train_fine_tuning`` with the faults the environment asks for."""

    def train(net, data, *args, run, **kwargs):
        rank, batches, mode = (os.environ.get("D2LHELPERS_TEST_FAIL") or "-1:0:exit").split(":")
        if int(rank) == RANK:
            run = dataclasses.replace(run, on_batch=failing_after(int(batches), mode))
        history = train_fine_tuning(net, data, *args, run=run, **kwargs)
        prefix = os.environ.get("D2LHELPERS_TEST_SAVE_EVERY_RANK")
        if prefix:
            state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
            torch.save(state, f"{prefix}.rank{RANK}")
        return history

    return train


if __name__ == "__main__":
    cli.train_fine_tuning = with_faults(cli.train_fine_tuning)
    sys.exit(cli.main())
