"""``monosweep plan SPEC``: trials in total, finished and to run, by axis, and the GPU-hours they need."""

from __future__ import annotations

import argparse

from sweep.commands._shared import command, print_table, spec_of
from sweep.estimate import DEFAULT_TFLOPS, sweep_hours
from sweep.plan import plan_sweep


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    tflops = args.tflops or DEFAULT_TFLOPS
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    counts, to_sample = plan.counts(), sum(plan.to_sample.values())
    print(f"sweep {spec.name!r}: {plan.total} trials - {counts.get('finished', 0)} finished, "
          f"{counts.get('diverged', 0)} diverged, {len(plan.todo) + to_sample} to run (storage {plan.storage.uri})")
    if spec.search is not None:
        print(f"search: {spec.search.num_samples} trials around each of {len(plan.points)} grid points, "
              f"{to_sample} still to sample; {spec.search.mode} {spec.search.metric} over "
              f"{', '.join(spec.search.space)}" + (" (ASHA prunes)" if spec.search.asha else ""))
    by_point = {p.id: p.config for p in plan.points}
    unsampled = [by_point[i] for i, n in plan.to_sample.items() for _ in range(n)]
    left, every = [t.config for t in plan.todo] + unsampled, [t.config for t in plan.trials] + unsampled
    print(f"compute: ~{sweep_hours(left, tflops):,.1f} GPU-hours to run, {sweep_hours(every, tflops):,.1f} "
          f"in all, at {tflops:g} TFLOP/s achieved (--tflops; measure yours with bench/bench_mfu.py)")
    rows = [("axis", "value", "total", "finished", "to run")]
    todo = {t.id for t in plan.todo}
    for axis in sorted(spec.grid):
        for value in spec.grid[axis]:
            members = [t for t in plan.trials if t.value(axis) == value]
            sample = sum(plan.to_sample.get(p.id, 0) for p in plan.points if p.value(axis) == value)
            rows.append((axis, str(value), str(len(members) + sample),
                         str(sum(plan.status(t) == "finished" for t in members)),
                         str(sum(t.id in todo for t in members) + sample)))
    print_table(rows)
    return 0
