"""A scrape of a map of a million keys under `--metrics-max-series` (issue 19).

    python3 -m benchmarks.metrics_scale                     # a table on stdout
    python3 -m benchmarks.metrics_scale --keys 100000 --json

Needs root. For each row, one pybpf run counts a child's lseek() calls by offset
(`@offsets[args->offset] = sum(args->offset)`, so the top keys by value are the highest offsets)
in a map of `--keys` distinct keys, then serves it on 127.0.0.1 with the row's
`--metrics-max-series`. Once the child has exited (its events are in the map: a tracepoint's
program runs in the syscall), the benchmark scrapes `--scrapes` times in a row and reports each
scrape's time (connect to the last byte: median and max) and pybpf's CPU time per scrape (user
and system: what the load of a shared machine does not change much), the answer's size, the map's series
served and `pybpf_series_dropped`, and pybpf's peak RSS (VmHWM) before the first scrape and
after the last. The rows: the cap (10,000 by default), and with --uncapped a cap above the
map's size, which serves everything.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchmarks.metrics_load import free_port, wait_ready

from benchmarks.common import benchmark_main

COMM = "pybpfscale"
SCRIPT = ('BEGIN { printf("ready\\n"); } '
          f'tracepoint:syscalls:sys_enter_lseek /comm == "{COMM}"/ {{ @offsets[args->offset] = sum(args->offset); }}')
WORKLOAD = ("import ctypes, os, sys\nctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
            "fd = os.open('/dev/null', os.O_RDONLY)\nfor i in range(int(sys.argv[2])):\n    os.lseek(fd, i, 0)\n")
_SERIES = re.compile(rb"^pybpf_offsets\{", re.M)
_DROPPED = re.compile(rb'^pybpf_series_dropped\{map="@offsets"\} (\S+)$', re.M)


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def cpu_seconds(pid: int) -> float:
    """pybpf's user + system time so far: what a scrape costs it, apart from the machine's load."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as response:
        body = response.read()
    return time.perf_counter() - start, body


def run(keys: int, max_series: int, scrapes: int) -> dict:
    port = free_port()
    entries = 1 << max(keys - 1, 1).bit_length()
    cmd = [sys.executable, "-m", "pybpf.cli", "--metrics", f"127.0.0.1:{port}", "--map-entries", str(entries),
           "--metrics-max-series", str(max_series), "-e", SCRIPT]
    with tempfile.TemporaryDirectory() as folder:
        out_path = os.path.join(folder, "out")
        with open(out_path, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_ready(out_path, proc)
            subprocess.run([sys.executable, "-c", WORKLOAD, COMM, str(keys)], check=True, timeout=600)
            rss_before, cpu_before = peak_rss_kib(proc.pid), cpu_seconds(proc.pid)
            times, body = [], b""
            for _ in range(scrapes):
                seconds, body = scrape(port)
                times.append(seconds)
            rss_after, cpu = peak_rss_kib(proc.pid), (cpu_seconds(proc.pid) - cpu_before) / scrapes
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    dropped = _DROPPED.search(body)
    times.sort()
    return {"keys": keys, "max_series": max_series, "scrape_median_s": times[len(times) // 2],
            "scrape_max_s": times[-1], "scrape_cpu_s": cpu, "body_bytes": len(body), "series": len(_SERIES.findall(body)),
            "dropped": int(float(dropped.group(1))) if dropped else None,
            "peak_rss_before_mib": rss_before / 1024, "peak_rss_after_mib": rss_after / 1024}


def options(parser) -> None:
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--max-series", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--uncapped", action="store_true", help="also a row that serves every key")


def measure(opts) -> list[dict]:
    caps = [opts.max_series] + ([opts.keys * 2] if opts.uncapped else [])
    return [run(opts.keys, cap, opts.scrapes) for cap in caps]


def print_table(rows: list[dict], opts) -> None:
    print(f"{'keys':>9} {'max series':>10} {'scrape med':>10} {'max':>7} {'CPU':>7} {'body':>9} {'series':>8} "
          f"{'dropped':>8} {'RSS before':>10} {'after':>8}")
    for r in rows:
        print(f"{r['keys']:>9} {r['max_series']:>10} {r['scrape_median_s'] * 1000:>8.0f}ms "
              f"{r['scrape_max_s'] * 1000:>5.0f}ms {r['scrape_cpu_s'] * 1000:>5.0f}ms {r['body_bytes'] / 1024:>7.0f}K {r['series']:>8} "
              f"{r['dropped']:>8} {r['peak_rss_before_mib']:>8.1f}M {r['peak_rss_after_mib']:>6.1f}M")


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options, measure, print_table, json_output="stdout")


if __name__ == "__main__":
    sys.exit(main())
