"""`pybpf --metrics` under load: scrape latency, and what the load costs the trace (issue 13).

    python3 -m benchmarks.metrics_load                 # a table on stdout
    python3 -m benchmarks.metrics_load --json          # the numbers

Needs root. One pybpf run per phase traces a paced workload (a Python child named
`pybpfbench` calling getppid in bursts of 200 with 20 ms pauses); each event is counted in a map
and printed through a 64 KiB ring buffer, which holds ~20 bursts: a trace loop held up by the
scrapes for a few hundred ms loses events. Phases:

    quiet      no scraper (the trace's own baseline)
    scrapers   50 concurrent scrapers in a loop (asyncio, one connection per scrape)
    idle       the same, with 1000 idle TCP connections opened first and held open
    big map    50 scrapers of a map of 50,000 keys (lseek offsets, filled before the scrapers start):
               each scrape reads and encodes ~3 MB, the render thread's worst case for the GIL

Reported per phase: scrape latency (connect to the answer's last byte: median, p99, max), scrapes
answered per second, scrapes refused (503 or reset), and the trace's events: generated, counted
in the map, printed, lost; then the time from SIGINT to pybpf's exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchmarks.common import benchmark_main

COMM = "pybpfbench"
SCRIPT = ('BEGIN { printf("ready\\n"); } '
          f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls = count(); printf("e\\n"); }} '
          f'tracepoint:syscalls:sys_enter_lseek /comm == "{COMM}"/ {{ @offsets[args->offset] = count(); }}')
# argv: comm, getppid calls, map keys (distinct lseek offsets, made first)
WORKLOAD = ("import ctypes, os, sys, time\nctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
            "fd = os.open('/dev/null', os.O_RDONLY)\nfor i in range(int(sys.argv[3])):\n    os.lseek(fd, i, 0)\n"
            "for i in range(int(sys.argv[2])):\n    os.getppid()\n"
            "    if i % 200 == 199:\n        time.sleep(0.02)\n")
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with open(path) as f:
            if "ready\n" in f.read():
                return
        time.sleep(0.05)
    raise RuntimeError(f"pybpf did not start: exit status {proc.poll()}")


async def scrape(port: int) -> tuple[float, bool]:
    """(seconds, answered 200) of one scrape; refused (503, reset) is (seconds, False)."""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        data = await reader.read()
        writer.close()
        ok = data[:16].split(b" ")[1:2] == [b"200"]
    except ConnectionError:
        ok = False
    return time.perf_counter() - start, ok


async def scrape_while(port: int, scrapers: int, workload: asyncio.subprocess.Process) -> dict:
    latencies, refused = [], 0
    done = asyncio.Event()

    async def loop():
        nonlocal refused
        while not done.is_set():
            seconds, ok = await scrape(port)
            if ok:
                latencies.append(seconds)
            else:
                refused += 1

    start = time.perf_counter()
    tasks = [asyncio.create_task(loop()) for _ in range(scrapers)]
    await workload.wait()
    done.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)  # noqa: E731
    return {"scrapes": len(latencies), "refused": refused, "per_s": round(len(latencies) / elapsed),
            "median_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(latencies[-1] * 1000, 2)} \
        if latencies else {"scrapes": 0, "refused": refused}


async def workload(events: int, keys: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", WORKLOAD, COMM, str(events), str(keys))


def run_phase(events: int, scrapers: int, idle: int, keys: int = 0) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as folder:
        out_path = os.path.join(folder, "out")
        open(out_path, "w").close()
        proc = subprocess.Popen([sys.executable, "-m", "pybpf.cli", "--metrics", f"127.0.0.1:{port}",
                                 "--ringbuf-size", "64K", *(("--map-entries", str(keys)) if keys else ()),
                                 "-o", out_path, "-e", SCRIPT], stderr=subprocess.PIPE, text=True)
        held = []
        try:
            wait_ready(out_path, proc)
            held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(idle)]
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))

            async def phase():
                await (await workload(0, keys)).wait()          # the map filled before any scrape
                child = await workload(events, 0)
                if scrapers:
                    return await scrape_while(port, scrapers, child)
                await child.wait()
                return {}
            result = asyncio.run(phase())
        finally:
            for sock in held:
                sock.close()
            start = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            stop_s = time.perf_counter() - start
        with open(out_path) as f:
            out = f.read()
    counted = re.search(r"^@calls: (\d+)$", out, re.M)
    lost = re.search(r"^Lost (\d+) events$", out, re.M)
    return {**result, "events": events, "counted": int(counted.group(1)) if counted else 0,
            "printed": out.splitlines().count("e"), "lost": int(lost.group(1)) if lost else 0,
            "exit": proc.returncode, "stop_s": round(stop_s, 2), "pybpf_fds": fds, "pybpf_threads": threads,
            "stderr_lines": len(err.splitlines())}


def options(parser) -> None:
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--scrapers", type=int, default=50)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=50_000)


def measure(opts) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = opts.idle + opts.scrapers + 200
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    return {"quiet": run_phase(opts.events, 0, 0),
            "scrapers": run_phase(opts.events, opts.scrapers, 0),
            "idle": run_phase(opts.events, opts.scrapers, opts.idle),
            "big map": run_phase(opts.events, opts.scrapers, 0, opts.keys)}


def print_table(phases: dict, opts) -> None:
    columns = ("scrapes", "refused", "per_s", "median_ms", "p99_ms", "max_ms", "events", "counted", "printed",
               "lost", "exit", "stop_s", "pybpf_fds", "pybpf_threads", "stderr_lines")
    print(f"{'phase':10}" + "".join(f"{c:>14}" for c in columns))
    for name, row in phases.items():
        print(f"{name:10}" + "".join(f"{str(row.get(c, '-')):>14}" for c in columns))


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options, measure, print_table, json_output="stdout")


if __name__ == "__main__":
    sys.exit(main())
