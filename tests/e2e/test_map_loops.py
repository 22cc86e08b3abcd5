"""`for ($kv : @m)` and `len(@m)` loaded, fired and read: what a loop reads of a map is what the
map prints at exit (per-CPU aggregations merged over the CPUs), as bpftrace 0.26 documents it."""

import re

import pytest

from e2e_helpers import READY, named_child, run_pybpf, trace

pytestmark = pytest.mark.kernel

COMM = "pybpfloops"
# Calls getppid N times on each CPU it may run on, so that per-CPU values differ by CPU.
ON_EVERY_CPU = ("import os\nfor c in sorted(os.sched_getaffinity(0)):\n"
                "    os.sched_setaffinity(0, {c})\n"
                "    for _ in range(int(sys.argv[2])):\n        os.getppid()\n")


def printed_maps(out: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^(@\S*): (-?\d+)$", out, re.M)}


def traced(script: str, calls: int) -> str:
    out = trace(["-e", READY + script], named_child(COMM, ON_EVERY_CPU, calls), timeout=60)
    return out


def test_end_reads_per_cpu_aggregations_as_the_maps_print_them():
    out = traced(
        f't:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @c[1] = count(); @c[cpu + 10] = count(); '
        '@s[1] = sum(cpu + 3); @mn[1] = min(cpu + 100); @mx[1] = max(cpu + 100); @av[1] = avg(cpu * 10); } '
        'END { $total = 0; $n = 0; '
        'for ($kv : @c) { $total += $kv.1; $n++; } '
        'for ($kv : @s) { printf("sum %d\\n", $kv.1); } '
        'for ($kv : @mn) { printf("min %d\\n", $kv.1); } '
        'for ($kv : @mx) { printf("max %d\\n", $kv.1); } '
        'for ($kv : @av) { printf("avg %d\\n", $kv.1); } '
        'printf("total %d entries %d len %d\\n", $total, $n, len(@c)); }', calls=50)
    maps = printed_maps(out)
    counts = {k: v for k, v in maps.items() if k.startswith("@c[")}
    assert counts["@c[1]"] >= 50 and len(counts) >= 2, out
    total = re.search(r"^total (\d+) entries (\d+) len (\d+)$", out, re.M)
    assert total and [int(g) for g in total.groups()] == [sum(counts.values()), len(counts), len(counts)], out
    for name, label in (("@s[1]", "sum"), ("@mn[1]", "min"), ("@mx[1]", "max"), ("@av[1]", "avg")):
        assert re.search(rf"^{label} {maps[name]}$", out, re.M), (label, out)


def test_an_interval_sums_a_map_each_tick_until_it_exits():
    r = run_pybpf(["-e", "interval:ms:50 { @ticks[0] = count(); $sum = 0; "
                   "for ($kv : @ticks) { $sum += $kv.1; } printf(\"sum %d\\n\", $sum); "
                   "if ($sum >= 3) { exit(); } }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Attaching 1 probe...\nsum 1\nsum 2\nsum 3\n\n\n@ticks[0]: 3\n"


def test_nested_loops_share_the_probes_variables_and_stop_on_break():
    r = run_pybpf(["-e", 'BEGIN { @a[1] = 10; @a[2] = 20; @a[3] = 30; @b["x"] = 1; @b["y"] = 2; '
                   '$pairs = 0; $label = "pair"; $big = 0; '
                   'for ($kv : @a) { if ($kv.1 < 20) { continue; } '
                   '  for ($kw : @b) { $pairs++; @seen[$kv.0, $kw.0] = $kv.1 + $kw.1; } '
                   '  $big = $kv.1 > $big ? $kv.1 : $big; } '
                   '$hits = 0; for ($kv : @a) { $hits++; break; } '
                   'printf("%s %d big %d hits %d len %d\\n", $label, $pairs, $big, $hits, len(@seen)); '
                   'clear(@a); clear(@b); exit(); }'])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "pair 4 big 30 hits 1 len 4", r.stdout
    assert sorted(l for l in lines if l.startswith("@seen")) == [
        "@seen[2, x]: 21", "@seen[2, y]: 22", "@seen[3, x]: 31", "@seen[3, y]: 32"]


def test_probe_in_a_loop_of_a_program_shared_by_syscall_tracepoints():
    out = traced('tracepoint:syscalls:sys_enter_getppid,tracepoint:syscalls:sys_enter_getpgid '
                 f'/comm == "{COMM}"/ {{ @calls[probe] = count(); '
                 'for ($kv : @calls) { @in_loop[probe] = count(); } }', calls=3)
    maps = printed_maps(out)
    assert maps["@calls[tracepoint:syscalls:sys_enter_getppid]"] >= 3, out
    assert maps["@in_loop[tracepoint:syscalls:sys_enter_getppid]"] == \
        maps["@calls[tracepoint:syscalls:sys_enter_getppid]"], out
    assert not any("getpgid" in k for k in maps), out


def test_a_loop_body_too_big_for_the_stack_left_is_a_compile_error():
    big = '"' + "a" * 60 + '"'
    # Each frame fits alone; the verifier adds the callback's to its caller's.
    r = run_pybpf(["-e", f"BEGIN {{ $s = {big}; $t = {big}; @m[1] = 1; printf(\"%s%s\\n\", $s, $t); "
                   f"for ($kv : @m) {{ $u = {big}; printf(\"%s\\n\", $u); }} }}"])
    assert r.returncode != 0
    assert "ERROR: The probe and its for-loop body use more than the BPF stack's 512 bytes" in r.stderr
    assert "Traceback" not in r.stderr
