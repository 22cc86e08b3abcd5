"""BPFTRACE_PERF_RB_PAGES and BPFTRACE_LOG_SIZE (and their config-block names) as they act: the
event ring buffer's size, read back from the kernel, and the verifier log's buffer."""

import os

import pytest

from e2e_helpers import READY, Running, run_pybpf

BPF_MAP_TYPE_RINGBUF = 27


def _ring_sizes(pid: int) -> list[int]:
    """max_entries of each BPF ring buffer the process holds (by map id: it may hold one through
    several fds), from /proc/PID/fdinfo."""
    sizes = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        if info.get("map_type", "").strip() == str(BPF_MAP_TYPE_RINGBUF):
            sizes[info["map_id"]] = int(info["max_entries"])
    return list(sizes.values())


def _ring_size_of(program: str, env=None, config: str = "") -> int:
    run = Running(["-e", config + READY + program], env=env)
    try:
        run.wait_for("ready")
        (size,) = _ring_sizes(run.proc.pid)
    finally:
        run.stop()
    return size


PRINTS = 'interval:s:30 { printf("%d\\n", pid); }'


@pytest.mark.kernel
@pytest.mark.parametrize("pages, size", [(64, 64 * 4096), (100, 128 * 4096), (1, None)])
def test_perf_rb_pages_sizes_the_event_ring_buffer(pages, size):
    # at least a page a CPU, rounded up to a power of two (bpftrace 0.26 and libbpf)
    size = size or 1 << (max(pages, _possible_cpus()) * 4096 - 1).bit_length()
    env = dict(os.environ, BPFTRACE_PERF_RB_PAGES=str(pages))
    assert _ring_size_of(PRINTS, env) == size
    assert _ring_size_of(PRINTS, config=f"config = {{ perf_rb_pages = {pages} }} ") == size


def _possible_cpus() -> int:
    with open("/sys/devices/system/cpu/possible") as f:
        ranges = f.read().strip().split(",")
    return sum(int(r.split("-")[-1]) - int(r.split("-")[0]) + 1 for r in ranges)


@pytest.mark.kernel
def test_ringbuf_size_option_wins_over_perf_rb_pages():
    env = dict(os.environ, BPFTRACE_PERF_RB_PAGES="64")
    assert _ring_size_of(PRINTS + " ", env) != 1 << 20
    run = Running(["--ringbuf-size", "1M", "-e", READY + PRINTS], env=env)
    try:
        run.wait_for("ready")
        assert _ring_sizes(run.proc.pid) == [1 << 20]
    finally:
        run.stop()


LOOP = "BEGIN { $i = 0; while ($i >= 0) { $i = $i + 1; } }"


@pytest.mark.kernel
def test_log_size_bounds_the_verifier_log_a_rejection_shows():
    whole = run_pybpf(["-v", "-e", LOOP])
    small = run_pybpf(["-v", "-e", LOOP], env=dict(os.environ, BPFTRACE_LOG_SIZE="300"))
    assert whole.returncode == small.returncode == 1
    # -v prints the whole log last, after the rejection's summary and its hint line; the kernel
    # keeps the log's last 299 bytes (and its NUL)
    log = small.stderr.split("\nhint: ", 1)[1].split("\n", 1)[1]
    assert 0 < len(log.encode()) <= 300, small.stderr
    assert len(whole.stderr) > len(small.stderr) + 1000
    assert whole.stderr.endswith(log)


def test_a_log_size_the_kernel_cannot_take_is_refused():
    done = run_pybpf(["-e", "config = { log_size = 100 } BEGIN { }"])
    assert done.returncode == 1
    assert "ERROR: log_size must be between 128 and 1073741823, got 100" in done.stderr
