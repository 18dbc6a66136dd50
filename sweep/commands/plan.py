"""``monosweep plan SPEC``: trials in total, finished and to run, by axis, and the GPU-hours they need.

It only looks: nothing is created, and a storage it cannot reach (the placeholder bucket of
``examples/paper.yaml``, a laptop without the cluster's credentials) still gets an answer, counted as if
nothing had finished."""

from __future__ import annotations

import argparse
import sys

from methods.trial.cost import DEFAULT_TFLOPS, sweep_hours
from sweep.commands._shared import command, print_table, spec_of
from sweep.grid import canonical
from sweep.plan import peek_plan


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    tflops = args.tflops or DEFAULT_TFLOPS
    plan, unreachable = peek_plan(spec, str(args.spec), args.storage)
    if unreachable is not None:
        print(f"[monosweep] warning: storage {plan.storage.uri} cannot be read ({unreachable}): the counts assume "
              "nothing has finished", file=sys.stderr)
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
    for axis in sorted(spec.grid):  # one pass per axis: a 10,000-value axis must not cost 10,000 passes

        def key(value: object, axis: str = axis) -> str:  # as the trials hold it (lr: 1 is the trial's 1.0)
            return repr(canonical({axis: value})[axis])

        tally = {key(value): [0, 0, 0] for value in spec.grid[axis]}  # total, finished, to run
        for trial in plan.trials:
            counts = tally.get(key(trial.value(axis)))
            if counts is not None:
                counts[0] += 1
                counts[1] += plan.status(trial) == "finished"
                counts[2] += trial.id in todo
        for point in plan.points:
            counts = tally.get(key(point.value(axis)))
            if plan.to_sample.get(point.id) and counts is not None:
                counts[0] += plan.to_sample[point.id]
                counts[2] += plan.to_sample[point.id]
        rows += [(axis, str(value), *(str(n) for n in tally[key(value)])) for value in spec.grid[axis]]
    print_table(rows)
    return 0
