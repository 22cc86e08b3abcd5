"""The BTF index: cold and cached lookups of `struct task_struct` and of an enumerator
(`SKB_DROP_REASON_NOT_SPECIFIED`, what a script's bare identifier costs), each in a fresh process.

    python3 -m benchmarks.btf_lookup                 # /sys/kernel/btf/vmlinux, 7 runs each
    python3 -m benchmarks.btf_lookup --runs 3 --path FILE

Each run is a new interpreter that imports pybpf.btf, loads the BTF, finds `struct task_struct` and
lists its members with their C types; "cold" runs start from an empty cache folder ($XDG_CACHE_HOME
points at a temporary one), "cached" runs find the index there. The interpreter's and the import's
cost are reported apart. A full decode of every type, and the cost of hashing the whole file (the
identity that was not chosen), are printed for reference. Medians, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pybpf.btf import Btf
t1 = time.perf_counter()
btf = Btf.load(sys.argv[1])
t2 = time.perf_counter()
task = btf.find("task_struct", "struct")
members = [(m.name, btf.c_name(m.type_id), m.bit_offset) for m in btf.members(task)]
t3 = time.perf_counter()
enumerator = btf.enumerator("SKB_DROP_REASON_NOT_SPECIFIED")
t4 = time.perf_counter()
out = {"import": t1 - t0, "load": t2 - t1, "lookup": t3 - t2, "enumerator": t4 - t3, "hit": btf.cache_hit,
       "members": len(members), "cache_file": btf.cache_file, "found": enumerator is not None}
if "--full" in sys.argv:
    import hashlib, zlib
    t4 = time.perf_counter()
    n = sum(1 for _ in btf)
    t5 = time.perf_counter()
    data = open(sys.argv[1], "rb").read()
    t6 = time.perf_counter()
    hashlib.sha1(data).digest()
    t7 = time.perf_counter()
    zlib.crc32(data)
    t8 = time.perf_counter()
    out.update(full=t5 - t4, types=n, read=t6 - t5, sha1=t7 - t6, crc32=t8 - t7)
print(json.dumps(out))
"""


def run_child(path: str, cache_home: str, *extra: str) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=cache_home)
    out = subprocess.run([sys.executable, "-c", CHILD, path, *extra], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def ms(values) -> str:
    return f"{statistics.median(values) * 1e3:7.1f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    if not os.path.exists(args.path):
        sys.exit(f"BTF is not available: {args.path} not found")

    rows = {"cold": [], "cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            home = os.path.join(tmp, f"cold{i}")
            rows["cold"].append(run_child(args.path, home))
            rows["cached"].append(run_child(args.path, home))
        full = run_child(args.path, os.path.join(tmp, "cold0"), "--full")
        cache_file = rows["cached"][0]["cache_file"]
        cache_size = os.path.getsize(cache_file) if cache_file and os.path.exists(cache_file) else 0
    assert not any(r["hit"] for r in rows["cold"]) and all(r["hit"] for r in rows["cached"])

    print(f"{args.path}: {full['types']} types, task_struct has {rows['cold'][0]['members']} members; "
          f"median of {args.runs} fresh processes, ms")
    print(f"{'':8} {'import':>7} {'load':>7} {'lookup':>7} {'load+lookup':>12} {'enumerator':>11}")
    for name, rs in rows.items():
        print(f"{name:8} {ms(r['import'] for r in rs)} {ms(r['load'] for r in rs)} "
              f"{ms(r['lookup'] for r in rs)} {ms(r['load'] + r['lookup'] for r in rs):>12} "
              f"{ms(r['enumerator'] for r in rs):>11}")
    print(f"full decode of every type: {full['full'] * 1e3:.0f} ms (after a cached load)")
    print(f"index cache file: {cache_size / 1024:.0f} KiB")
    print(f"for reference, the whole-file identity not chosen: read {full['read'] * 1e3:.1f} ms, "
          f"sha1 {full['sha1'] * 1e3:.1f} ms, crc32 {full['crc32'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
