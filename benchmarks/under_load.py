"""Training speed alone and beside a competing CPU-bound process, per OpenMP wait policy.

torch's intra-op threads (GNU OpenMP) spin-wait between parallel regions by default
(``OMP_WAIT_POLICY`` unset or ``ACTIVE``): on a machine where another process wants a core,
the spinning threads take its time slices and training slows far more than the load explains.
This measures the training loop's step (channels-last ResNet-18, batch 128, fp32 or bf16) in a
fresh process per case, each setting of :data:`POLICIES` alone and beside ``--competitors`` busy
processes, and
writes ``benchmarks/results/under-load.{json,md}``. Each case is repeated ``--repeats`` times,
alternating, and reported as the median.

    .venv/bin/python -m benchmarks.under_load
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.loop_vs_bare import write_text
from d2lhelpers.machine import cpu_name, usable_cores

RESULTS = Path(__file__).resolve().parent / "results"
# Each case's OpenMP settings: torch's default (GNU OpenMP spins 300,000 times, then sleeps),
# spinning forever, sleeping at once, and a short spin.
POLICIES = {
    "default (unset)": {},
    "OMP_WAIT_POLICY=ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}
WORKER = """
import sys, time, torch
from benchmarks.loop_vs_bare import fresh_net, model_steps, sgd
from d2lhelpers.precision import choose_precision
size, steps, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
net = fresh_net()
x = torch.randn(128, 3, size, size).contiguous(memory_format=torch.channels_last)
y = torch.arange(128) % 2
p, opt = choose_precision(torch.device("cpu"), precision), sgd(net)
model_steps(net, [(x, y)] * 2, p, opt)
start = time.perf_counter()
model_steps(net, [(x, y)] * steps, p, opt)
print(128 * steps / (time.perf_counter() - start))
"""


def busy(stop_at: float) -> None:
    """A CPU-bound competitor: Python arithmetic until ``stop_at``."""
    n = 0
    while time.time() < stop_at:
        n += 1


def images_per_second(policy: str, competitors: int, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= POLICIES[policy] | {"PYTHONPATH": str(Path.cwd())}
    rivals = [
        multiprocessing.Process(target=busy, args=(time.time() + 600,)) for _ in range(competitors)
    ]
    for rival in rivals:
        rival.start()
    try:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, str(args.size), str(args.steps), args.precision],
            env=env, capture_output=True, text=True, check=True, timeout=900,
        )  # fmt: skip
    finally:
        for rival in rivals:
            rival.terminate()
            rival.join()
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cases = [(p, c) for p in POLICIES for c in (0, args.competitors)]
    samples: dict[str, list[float]] = {f"{p} {c}": [] for p, c in cases}
    for _ in range(args.repeats):
        for policy, competitors in cases:
            rate = images_per_second(policy, competitors, args)
            samples[f"{policy} {competitors}"].append(rate)
            print(policy, competitors, round(rate, 1), flush=True)
    rates = {case: statistics.median(values) for case, values in samples.items()}
    report = {
        "command": "python -m benchmarks.under_load " + " ".join(argv or sys.argv[1:]),
        "cpu": cpu_name(), "cores": usable_cores(), "size": args.size,
        "precision": args.precision, "competitors": args.competitors, "rates": rates,
        "samples": samples, "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }  # fmt: skip
    lines = [
        f"Command: `{report['command']}` ({report['finished']}; {report['cpu']}, "
        f"{report['cores']} cores; {args.size} px, {args.precision}, batch 128, 2 threads)",
        "",
        "| OpenMP setting | alone, img/s | beside "
        f"{args.competitors} busy process(es), img/s | kept |",
        "| --- | ---: | ---: | ---: |",
    ]
    for policy in POLICIES:
        alone, loaded = rates[f"{policy} 0"], rates[f"{policy} {args.competitors}"]
        lines.append(f"| {policy} | {alone:.1f} | {loaded:.1f} | {loaded / alone:.0%} |")
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "under-load.json", json.dumps(report, indent=1))
    write_text(RESULTS / "under-load.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
