"""Soak test: the real `pybpf` traces every syscall under a heavy workload for a while; its memory
stays flat and its maps agree with the workload's own counts. Not part of the test suite (slow):

    sudo python3 tests/soak/soak.py --seconds 60 [--workers 2]

The workload is forked children named `pybpfsoak` (their comm) that loop over getppid() (counted by
the child itself) mixed with other syscalls (stat, open/read/close of /dev/zero). pybpf runs with
several aggregations over tracepoint:raw_syscalls:sys_enter, a getppid tracepoint, a sampled printf
and a 1 s interval printf. Every second the script samples pybpf's RSS (/proc/PID/status VmRSS).
At the end: pybpf's @getppid and @soak_ids[110] (getppid's syscall number on x86-64) must equal the
children's total, and the RSS after warm-up may grow by at most --max-growth-kb. Exit status 0 when
everything holds; a summary goes to stdout either way.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

COMM = "pybpfsoak"
NR_GETPPID = 110      # x86-64

PROGRAM = """
BEGIN { printf("ready\\n"); }
tracepoint:raw_syscalls:sys_enter {
    @calls[comm] = count();
    @by_cpu[cpu] = count();
    @ids = hist(args.id);
    if (comm == "%(comm)s") { @soak_ids[args.id] = count(); }
}
tracepoint:syscalls:sys_enter_getppid /comm == "%(comm)s"/ {
    @getppid = count();
    @per_pid[pid] = count();
    @gap = stats(nsecs - @last[pid]);
    @last[pid] = nsecs;
    if (rand %% 8192 == 0) { printf("sample %%d %%s\\n", pid, comm); }
}
interval:s:1 { printf("tick\\n"); }
""" % {"comm": COMM}


def worker(seconds: float, report_fd: int) -> None:
    """A child: rename itself, hammer syscalls until the deadline, report its getppid count."""
    with open("/proc/self/comm", "w") as f:
        f.write(COMM)
    deadline = time.monotonic() + seconds          # vDSO: no syscall
    getppid, stat, calls = os.getppid, os.stat, 0
    while time.monotonic() < deadline:
        for _ in range(200):
            getppid()
        calls += 200
        stat("/")
        fd = os.open("/dev/zero", os.O_RDONLY)
        os.read(fd, 64)
        os.close(fd)
    os.write(report_fd, f"{calls}\n".encode())
    os._exit(0)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--max-growth-kb", type=int, default=4096,
                    help="allowed RSS growth from the end of warm-up (10%% of the run) to the end")
    opts = ap.parse_args()

    pybpf = subprocess.Popen([sys.executable, "-m", "pybpf.cli", "-f", "json", "-e", PROGRAM],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in pybpf.stdout:
        if json.loads(line).get("data") == "ready\n":
            break
    else:
        print("pybpf did not start:", pybpf.stderr.read())
        return 1

    # Drain pybpf's output meanwhile (ticks and samples), or it would block on a full pipe.
    import threading
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(pybpf.stdout), daemon=True)
    reader.start()

    read_end, write_end = os.pipe()
    children = []
    for _ in range(opts.workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            worker(opts.seconds, write_end)
        children.append(pid)
    os.close(write_end)

    samples = []      # (seconds since start, RSS kB)
    start = time.monotonic()
    while any(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children):
        samples.append((time.monotonic() - start, rss_kb(pybpf.pid)))
        time.sleep(1.0)
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    with os.fdopen(read_end) as f:
        made = sum(int(n) for n in f.read().split())
    samples.append((time.monotonic() - start, rss_kb(pybpf.pid)))

    pybpf.send_signal(signal.SIGINT)
    pybpf.wait(timeout=60)
    reader.join(timeout=10)
    err = pybpf.stderr.read()
    maps: dict = {}
    lost = 0
    ticks = samples_printed = 0
    for line in lines:
        record = json.loads(line)
        if record["type"] in ("map", "hist", "stats"):
            maps.update(record["data"])
        elif record["type"] == "lost_events":
            lost = record["data"]["events"]
        elif record["type"] == "printf":
            ticks += record["data"] == "tick\n"
            samples_printed += record["data"].startswith("sample")

    traced_getppid = maps.get("@getppid")
    traced_by_id = maps.get("@soak_ids", {}).get(str(NR_GETPPID))
    per_pid_total = sum(maps.get("@per_pid", {}).values())
    warm = [kb for t, kb in samples if t >= opts.seconds * 0.1] or [samples[-1][1]]
    growth = samples[-1][1] - warm[0]
    total_syscalls = sum(maps.get("@calls", {}).values())

    print(f"ran {samples[-1][0]:.1f} s with {opts.workers} workers; pybpf exit status {pybpf.returncode}")
    print(f"workload getppid calls: {made}; traced @getppid {traced_getppid}, @soak_ids[{NR_GETPPID}] "
          f"{traced_by_id}, sum(@per_pid) {per_pid_total}")
    print(f"all syscalls traced: {total_syscalls} ({total_syscalls / samples[-1][0]:.0f}/s); "
          f"ticks {ticks}; sampled printfs {samples_printed}; lost events {lost}")
    print(f"pybpf RSS kB: start {samples[0][1]}, after warm-up {warm[0]}, max {max(kb for _, kb in samples)}, "
          f"end {samples[-1][1]} (growth after warm-up {growth} kB)")
    if err.strip():
        print("pybpf stderr:", err.strip())
    ok = (pybpf.returncode == 0 and traced_getppid == made == traced_by_id == per_pid_total
          and growth <= opts.max_growth_kb)
    # Not checked: interval ticks. The kernel skips a perf-event program that fires while another BPF
    # program runs on that CPU (recursion protection), so under this load many ticks never happen.
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
