"""``monosweep stop SPEC``: ask the driver that holds the sweep's lease to stop, through the storage."""

from __future__ import annotations

import argparse
import time

from sweep.commands._shared import command, spec_of
from sweep.ledger.lease import holder_of, request_stop
from sweep.storage import Storage


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    storage = Storage(spec.storage_uri(args.storage))
    storage.check()
    holder = request_stop(storage)
    if holder is None:
        print(f"sweep {spec.name!r}: no driver holds its lease in {storage.uri}; nothing to stop")
        return 0
    driver = f"driver pid {holder.get('pid')} on {holder.get('host')}"
    print(f"sweep {spec.name!r}: asked the {driver} to stop; its running trials end interrupted at their last "
          f"checkpoint, and `monosweep run {args.spec}` resumes them")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        now = holder_of(storage)
        if now is None or now.get("id") != holder.get("id"):
            print(f"sweep {spec.name!r}: the {driver} has stopped and released its lease")
            return 0
        time.sleep(1.0)
    if args.wait:
        print(f"sweep {spec.name!r}: the {driver} still holds the lease after {args.wait:g} s; it stops at its next "
              "heartbeat if it is alive (see `monosweep status`)")
        return 1
    return 0
