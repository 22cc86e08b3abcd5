"""The library as a program embedding it uses it: pybpf.compile, Program.run, the Trace's events,
maps, fd, lost events, errors and Ctrl-C, against events the test causes in its own process."""

import os
import re
import select
import subprocess
import sys

import pytest

import pybpf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMM = "pybpflibtest"
GETPPID_PROBE = f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/'


@pytest.fixture
def own_comm():
    """This process named COMM (prctl PR_SET_NAME), so that predicates count only its events."""
    import ctypes
    libc = ctypes.CDLL(None)
    with open("/proc/self/comm", "rb") as f:
        before = f.read().strip()
    libc.prctl(15, COMM.encode(), 0, 0, 0)
    yield
    libc.prctl(15, before, 0, 0, 0)


def test_compile_describes_the_program():
    prog = pybpf.compile("BEGIN { @n[comm, 1] = count(); @h = hist(3); @s = avg(2); exit(); }")
    assert prog.probes == ("BEGIN",)
    assert prog.maps["@n"] == pybpf.MapInfo("@n", "count", ("string[16]", "int64"), "int64")
    assert [m.kind for m in prog.maps.values()] == ["hist", "count", "avg"]   # name order
    assert prog.elf.startswith(b"\x7fELF")
    assert "define" in prog.ir


def test_a_bad_program_is_a_compile_error_and_a_pybpf_error():
    with pytest.raises(pybpf.CompileError) as caught:
        pybpf.compile("BEGIN { @x = ; }")
    assert isinstance(caught.value, pybpf.Error)
    assert str(caught.value).startswith("stdin:1:14-15: ERROR: syntax error")


def test_params_are_the_positional_parameters():
    prog = pybpf.compile("BEGIN { printf(\"%d %s\\n\", $1, str($2)); exit(); }", params=[7, "x"])
    assert prog.options.params == ("7", "x")


@pytest.mark.kernel
def test_events_and_live_maps_reach_python(own_comm):
    prog = pybpf.compile(
        'BEGIN { printf("started\\n"); } '
        f'{GETPPID_PROBE} {{ @calls[comm] = count(); @by[pid, comm] = count(); '
        '@size = hist(100); @lin = lhist(3, 0, 10, 1); @st = stats(10); @mean = avg(4); '
        '@last = (pid, "x"); print((pid, comm)); }')
    printed, events = [], []
    with prog.run(on_printf=printed.append, on_event=events.append) as trace:
        assert trace.maps["@calls"] == {}
        for _ in range(3):
            os.getppid()
        trace.poll(0.5)
        calls = trace.maps["@calls"]
        assert calls[COMM] == 3 and dict(calls) == {COMM: 3}      # live, with Python keys
        assert trace.maps["@by"][(os.getpid(), COMM)] == 3
        os.getppid()
        assert calls[COMM] == 4                                     # read again: the new count
    assert printed == ["started\n"]
    assert events == [(os.getpid(), COMM)] * 4
    size = trace.maps["@size"].value                                # the final values stay
    assert size.total == 4 and [(b.lo, b.hi, b.count) for b in size.buckets] == [(64, 128, 4)]
    assert str(size) == "@size: \n[64, 128)              4 |" + "@" * 52 + "|\n\n"
    assert [(b.lo, b.hi) for b in trace.maps["@lin"].value.buckets] == [(3, 4)]
    stats = trace.maps["@st"].value
    assert (stats.count, stats.total, stats.average) == (4, 40, 10)
    assert str(stats) == "count 4, average 10, total 40" and str(trace.maps["@mean"].value) == "4"
    assert trace.maps["@last"].value == (os.getpid(), "x")


@pytest.mark.kernel
def test_print_maps_prints_as_bpftrace_at_exit(capsys):
    with pybpf.compile("BEGIN { @b[2] = 5; @a = count(); @s = stats(3); exit(); }").run() as trace:
        assert trace.wait(5) is True                   # exit() ran
    trace.print_maps()
    assert capsys.readouterr().out == "@a: 1\n@b[2]: 5\n@s: count 1, average 3, total 3\n\n"


@pytest.mark.kernel
def test_fileno_is_there_before_start_and_readable_when_events_wait(own_comm):
    trace = pybpf.compile(f'{GETPPID_PROBE} {{ printf("call\\n"); }}').run(on_printf=lambda t: None)
    fd = trace.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    with trace:
        os.getppid()
        assert select.select([fd], [], [], 5)[0] == [fd]
        assert trace.poll(0) is True


@pytest.mark.kernel
def test_lost_events_are_counted_and_reported(own_comm):
    options = pybpf.CompileOptions(ringbuf_size=4096)
    prog = pybpf.compile(f'{GETPPID_PROBE} {{ printf("%s\\n", str(comm, 200)); }}', options=options)
    reported = []
    with prog.run(on_printf=lambda text: None, on_lost=reported.append) as trace:
        for _ in range(500):                            # far more than a page holds, unread
            os.getppid()
        trace.poll(0)
    assert trace.lost > 0 and sum(reported) == trace.lost


@pytest.mark.kernel
def test_an_output_prints_the_lost_events_once_at_stop(own_comm):
    import io
    buffer = io.StringIO()
    prog = pybpf.compile(f'{GETPPID_PROBE} {{ printf("%s\\n", str(comm, 200)); }}',
                         options=pybpf.CompileOptions(ringbuf_size=4096))
    with prog.run(output=pybpf.make_output("text", buffer, quiet=True)) as trace:
        for _ in range(500):
            os.getppid()
        trace.poll(0)
    assert trace.lost > 0
    text = buffer.getvalue()
    assert text.startswith(f"{COMM}\n") and text.count("Lost") == 1
    assert text.endswith(f"\n\n\nLost {trace.lost} events\n")     # the maps' separator, then it


@pytest.mark.kernel
def test_ctrl_c_in_the_block_stops_the_trace_then_goes_on_up():
    printed = []
    prog = pybpf.compile('BEGIN { @a = 1; } END { printf("end ran\\n"); }')
    with pytest.raises(KeyboardInterrupt):
        with prog.run(on_printf=printed.append) as trace:
            raise KeyboardInterrupt
    assert printed == ["end ran\n"] and trace.maps["@a"].value == 1 and not trace.running


@pytest.mark.kernel
def test_another_exception_releases_everything_without_end():
    printed = []
    with pytest.raises(ZeroDivisionError):
        with pybpf.compile('END { printf("end ran\\n"); }').run(on_printf=printed.append):
            1 / 0
    assert printed == []


@pytest.mark.kernel
def test_a_probe_this_kernel_cannot_run_is_a_pybpf_error_and_prints_nothing(capsys):
    trace = pybpf.compile("kprobe:vfs_read { @ = count(); }").run()
    with pytest.raises(pybpf.ProbeUnavailableError) as caught:
        trace.start()
    assert isinstance(caught.value, pybpf.Error)
    assert "kprobe" in str(caught.value)
    assert capsys.readouterr().out == ""


@pytest.mark.kernel
@pytest.mark.parametrize("page", ["README.md", "docs/library.md"])
def test_the_embedding_example_runs_as_written(tmp_path, page):
    with open(os.path.join(ROOT, page)) as f:
        text = f.read()
    example = re.search(r"<!-- embedding example -->\n```python\n(.*?)```", text, re.S)[1]
    assert len(example.strip().splitlines()) <= 10
    script = tmp_path / "embed.py"
    script.write_text(example)
    # errors="replace": other processes' names need not be UTF-8 (another test names one b"caf\xe9")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            errors="replace", timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^python\S* \d+$", result.stdout, re.M), result.stdout


@pytest.mark.kernel
def test_join_text_reaches_on_printf():
    printed = []
    prog = pybpf.compile('tracepoint:syscalls:sys_enter_execve /comm == "pybpfjoiner"/ '
                         '{ join(args->argv, ","); }')
    with prog.run(on_printf=printed.append) as trace:
        child = subprocess.run([sys.executable, "-c", "import ctypes, os\n"
                                "ctypes.CDLL(None).prctl(15, b'pybpfjoiner', 0, 0, 0)\n"
                                "os.execv('/bin/true', ['true', 'a', 'b'])"], timeout=30)
        assert child.returncode == 0
        trace.poll(0.5)
    assert printed == ["true,a,b\n"]


@pytest.mark.kernel
def test_records_reach_python_as_named_tuples(own_comm):
    prog = pybpf.compile(f'{GETPPID_PROBE} {{ @calls[(comm=comm, pid=pid)] = count(); '
                         '@last = (tid=tid, pair=(1, "x"), inner=(n=2)); print((pid=pid, comm=comm)); }')
    assert prog.maps["@calls"].key_types == ("(comm=string[16], pid=uint64)",)
    events = []
    with prog.run(on_event=events.append) as trace:
        for _ in range(2):
            os.getppid()
        trace.poll(0.5)
        calls = trace.maps["@calls"]
        assert calls[(COMM, os.getpid())] == 2                   # a plain tuple finds the record key
        (key, count), = calls.items()
        assert isinstance(key, pybpf.Record) and (key.comm, key.pid, count) == (COMM, os.getpid(), 2)
    assert [(e.pid, e.comm) for e in events] == [(os.getpid(), COMM)] * 2
    assert all(isinstance(e, pybpf.Record) and e._asdict() == {"pid": os.getpid(), "comm": COMM}
               for e in events)
    last = trace.maps["@last"].value
    assert last.tid == os.getpid() and last.pair == (1, "x") and last.inner.n == 2
    assert not isinstance(last.pair, pybpf.Record) and isinstance(last.inner, pybpf.Record)


@pytest.mark.kernel
def test_an_output_prints_as_the_command_does_and_the_maps_stay_readable(own_comm):
    import io
    buffer = io.StringIO()
    prog = pybpf.compile(f'{GETPPID_PROBE} {{ @calls = count(); printf("call\\n"); }}')
    with prog.run(output=pybpf.make_output("json", buffer)) as trace:
        os.getppid()
        trace.poll(0.5)
    assert buffer.getvalue().splitlines() == [
        '{"type": "attached_probes", "count": 1, "data": {"probes": 1}}',
        '{"type": "printf", "data": "call\\n"}',
        '{"type": "map", "data": {"@calls": 1}}']
    assert trace.maps["@calls"].value == 1
    with pytest.raises(ValueError):
        prog.run(on_printf=print, output=pybpf.make_output("text", buffer))


@pytest.mark.kernel
def test_exit_code_warnings_and_the_pid_reach_the_host():
    warned = []
    prog = pybpf.compile("BEGIN { warnf(\"%d\", cpid); printf(\"%d\\n\", pid); exit(3); }",
                         options=pybpf.CompileOptions(filter_pid=True), cache=False)
    assert prog.stage_seconds and all(s >= 0 for s in prog.stage_seconds.values())
    printed = []
    with prog.run(on_printf=printed.append, on_warning=warned.append, pid=os.getpid(),
                  cpid=4242) as trace:
        assert trace.wait(5)
    assert trace.exit_code == 3
    assert warned == ["stdin:1:9-26: WARNING: 4242"] and printed == [f"{os.getpid()}\n"]


@pytest.mark.kernel
def test_a_program_filtered_to_a_pid_counts_only_that_process():
    prog = pybpf.compile("tracepoint:syscalls:sys_enter_getppid { @calls[pid] = count(); }",
                         options=pybpf.CompileOptions(filter_pid=True))
    with prog.run(pid=os.getpid()) as trace:
        os.getppid()
        subprocess.run([sys.executable, "-c", "import os; os.getppid()"], check=True, timeout=30)
    assert dict(trace.maps["@calls"]) == {os.getpid(): 1}


def test_compiler_warnings_come_with_the_program():
    prog = pybpf.compile('config = { on_stack_limit = 100 } BEGIN { exit(); }')
    assert len(prog.warnings) == 1 and "WARNING: on_stack_limit is accepted but not implemented" in prog.warnings[0]


@pytest.mark.kernel
def test_verify_loads_without_attaching_and_a_rejection_is_placed_on_its_statement():
    pybpf.compile("tracepoint:syscalls:sys_enter_getppid { @ = count(); }").verify()
    source = "BEGIN {\n  $i = 0;\n  while ($i >= 0) { $i = $i + 1; }\n}\n"
    prog = pybpf.compile(source)
    with pytest.raises(pybpf.VerifierError) as caught:
        prog.verify()
    lines = prog.describe_rejection(caught.value).splitlines()
    assert lines[:3] == ["stdin:3:3-35: ERROR: the kernel's verifier rejected the program for BEGIN",
                         "  while ($i >= 0) { $i = $i + 1; }",
                         "  ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"]


@pytest.mark.kernel
def test_cat_text_reaches_on_printf(tmp_path):
    path = tmp_path / "note"
    path.write_text("from a file\n")
    printed = []
    with pybpf.compile(f'BEGIN {{ cat("{path}"); exit(); }}').run(on_printf=printed.append) as trace:
        trace.wait(5)
    assert printed == ["from a file\n"]
