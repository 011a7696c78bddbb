"""Native allocations under an address-space limit: ``python -m tests.fuzz.native_memory``.

tracemalloc sees Python's allocators only; kio's Rust reader allocates with malloc. This
decodes seeded cases (``frames.draw_case``) in a process whose address space may grow by
at most ``--limit-mib`` beyond its size once warmed up (``RLIMIT_AS``). A reservation
for a declared length fails there, and Rust aborts the process (exit status -6, SIGABRT):
the caller sees the crash, and the last case tried is in ``--progress``.

Prints one JSON object: frames, outcomes, and the address-space peak above the size at
the start of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
from collections import Counter

from tests.fuzz.campaign import PROTOCOL_ERRORS
from tests.fuzz.frames import RandomDraw, decode_frame, draw_case, targets


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` size (VmSize, VmPeak, ...) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--limit-mib", type=int, default=256)
    parser.add_argument("--progress", help="file that holds the label of the case being tried")
    args = parser.parse_args(argv)

    targets()  # imports, kio's readers and schemas: all before the limit
    draw = RandomDraw(random.Random(args.seed))
    cases = [draw_case(draw) for _ in range(args.frames)]
    start_size = vm_kib("VmSize")
    limit = (start_size + args.limit_mib * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file
    progress = os.open(args.progress, os.O_WRONLY | os.O_CREAT) if args.progress else None
    outcomes: Counter[str] = Counter()
    for case in cases:
        if progress is not None:
            label = f"{case.label}\n{case.frame.hex()}\n".encode()
            os.ftruncate(progress, 0)
            os.pwrite(progress, label, 0)
        try:
            decode_frame(case.frame)
        except PROTOCOL_ERRORS:
            outcomes["rejected"] += 1
        except MemoryError:
            outcomes["memory-error"] += 1
        except Exception:
            outcomes["crash"] += 1
        else:
            outcomes["decoded"] += 1
    summary = {
        "seed": args.seed,
        "frames": len(cases),
        "limit_mib": args.limit_mib,
        "outcomes": dict(outcomes),
        "address_space_peak_above_start_kib": vm_kib("VmPeak") - start_size,
    }
    print(json.dumps(summary))
    return 0 if outcomes["memory-error"] == 0 and outcomes["crash"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
