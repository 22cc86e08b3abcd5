"""ELF parse time against the number of program sections: objects of 100, 1000 and 1587 programs
(the size of `tracepoint:*:*` on the reference machine).

    python3 -m benchmarks.elf_scale                   # table; JSON with --json FILE
    python3 -m benchmarks.elf_scale --sizes 100 400   # other sizes

Each object is what pybpf compiles for one probe on the first N tracepoints of this kernel (sorted by
name, syscalls included: --no-shared-syscalls gives each its own program), with a count and a
printf per program, so that every program section has map relocations. The parse is
pybpf.backend.objspec.parse_object, timed in this process (the best of --repeat runs); a parse
linear in the number of sections keeps the time per section flat as N grows. Needs tracefs (root).
"""

from __future__ import annotations

import sys
import time

from benchmarks.common import benchmark_main

SIZES = (100, 1000, 1587)


def script(points: list[tuple[str, str]]) -> str:
    names = ",\n".join(f"tracepoint:{category}:{name}" for category, name in points)
    return names + ' { @[probe] = count(); if (pid == 1) { printf("%d\\n", cpu); } }\n'


def compile_object(programs: int) -> bytes:
    from pybpf.compiler import CompileOptions, compile_source
    from pybpf.tracefs import list_tracepoints

    points = sorted(list_tracepoints())
    if len(points) < programs:
        raise SystemExit(f"this kernel has {len(points)} tracepoints, fewer than {programs}")
    compiled = compile_source(script(points[:programs]), "elf_scale.pbt",
                              CompileOptions(share_syscalls=False, max_probes=programs))
    return compiled.elf


def measure(sizes=SIZES, repeat: int = 1) -> dict:
    from pybpf.backend.objspec import parse_object

    results = {}
    for size in sizes:
        elf = compile_object(size)
        best = None
        for _ in range(repeat):
            start = time.perf_counter()
            spec = parse_object(elf)
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        sections = len(spec.programs)
        results[str(size)] = {"sections": sections, "elf_bytes": len(elf), "parse_s": best,
                              "per_section_ms": best * 1000 / sections}
    return results


def options(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=3)


def print_table(results: dict, opts) -> None:
    print(f"{'programs':>8} {'ELF bytes':>10} {'parse s':>9} {'ms/section':>11}")
    for row in results.values():
        print(f"{row['sections']:>8} {row['elf_bytes']:>10,} {row['parse_s']:>9.3f} "
              f"{row['per_section_ms']:>11.3f}")


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options, lambda opts: measure(opts.sizes, opts.repeat),
                          print_table, json_output="file")


if __name__ == "__main__":
    sys.exit(main())
