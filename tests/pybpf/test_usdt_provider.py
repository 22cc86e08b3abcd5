"""usdt: front end: resolving sites of a program built with <sys/sdt.h>, their arguments, listing
(-l, -lv), the errors a user sees, and the programs a probe compiles to (one per argument layout)."""

import os
import re
import subprocess
import sys

import pytest

from pybpf.compiler import CompileOptions, compile_source
from pybpf.diagnostics import CompileError
from pybpf.listing import ListingError, describe_probe, list_probes


def compiled(source: str, **options):
    return compile_source(source, options=CompileOptions(**options))


def test_every_site_is_an_attach_point_sites_with_other_arguments_another_program(usdt_app):
    programs = compiled(f'usdt:{usdt_app}:app:two {{ @[arg0] = sum(arg1); }}').programs
    assert len(programs) == 2                      # the two sites keep their arguments apart
    points = [p for program in programs for p in program.attach_points]
    assert {p.name for p in points} == {f"usdt:{usdt_app}:app:two"} and len(points) == 2
    assert {p.attach_kind for p in points} == {"usdt"}
    assert len({p.perf_event.config2 for p in points}) == 2
    assert all(p.perf_event.config == 0 and p.perf_event.pid == -1 for p in points)


def test_sites_share_a_program_when_the_arguments_are_not_read(usdt_app):
    (program,) = compiled(f'U:{usdt_app}:two {{ @ = count(); }}').programs
    assert len(program.attach_points) == 2


def test_wildcards_over_provider_and_name(usdt_app):
    source = f'usdt:{usdt_app}:*:* {{ @[probe] = count(); }}'
    names = {p.name for program in compiled(source).programs for p in program.attach_points}
    assert names == {f"usdt:{usdt_app}:{n}"
                     for n in ("app:kinds", "app:two", "app:mem", "other:none", "app:guarded")}


def test_a_semaphore_becomes_the_uprobes_ref_ctr_offset(usdt_app):
    (program,) = compiled(f'usdt:{usdt_app}:app:guarded {{ @ = count(); }}').programs
    (point,) = program.attach_points
    from pybpf import elfsym
    symbol = elfsym.symbol_address(usdt_app, "app_guarded_semaphore")
    assert point.perf_event.config == elfsym.file_offset(usdt_app, symbol) << 32


@pytest.mark.parametrize("source,message", [
    ("usdt:{usdt_app}:app:nothere {{ }}", "no USDT probe usdt:{usdt_app}:app:nothere in {usdt_app}"),
    ("usdt:/no/such/binary:app:two {{ }}", "binary not found: /no/such/binary"),
    ("usdt:{usdt_app} {{ }}", "a usdt probe is usdt:BINARY:[PROVIDER:]NAME"),
    ("usdt:{usdt_app}:app:two {{ @ = arg2; }}",
     "arg2: usdt:{usdt_app}:app:two has 2 arguments at file offset"),
    ("usdt:{usdt_app}:app:mem {{ @ = arg3; }}", "arg3: usdt:{usdt_app}:app:mem has 3 arguments"),
    ("usdt:{usdt_app}:other:none {{ @ = arg0; }}", "arg0: usdt:{usdt_app}:other:none has 0 arguments"),
])
def test_errors(usdt_app, source, message):
    with pytest.raises(CompileError, match=re.escape(message.format(usdt_app=usdt_app))):
        compiled(source.format(usdt_app=usdt_app))


def test_pid_that_does_not_exist(usdt_app):
    with pytest.raises(CompileError, match="no process with pid 999999999"):
        compiled(f"usdt:{usdt_app}:app:two {{ }}", pid=999999999)


def test_pid_finds_the_binary_among_the_processs_mappings(usdt_app):
    """With -p, BINARY may be a file name the process maps (a library's name, here the program's
    own); the uprobes are limited to the process."""
    app = subprocess.Popen([usdt_app], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        app.stdin.write(b"k\n")
        app.stdin.flush()
        assert app.stdout.readline().startswith(b"tick 0")        # running, its files mapped
        programs = compiled(f"usdt:{os.path.basename(usdt_app)}:app:guarded {{ }}", pid=app.pid).programs
        (point,) = programs[0].attach_points
        assert point.target == f"{usdt_app}:app:guarded" and point.perf_event.pid == app.pid
        with pytest.raises(CompileError, match=f"process {app.pid} maps no file libnothere"):
            compiled("usdt:libnothere:a:b { }", pid=app.pid)
    finally:
        app.communicate(timeout=10)


def test_listing(usdt_app):
    assert list_probes(f"usdt:{usdt_app}:*") == [f"usdt:{usdt_app}:{n}" for n in
                                             ("app:guarded", "app:kinds", "app:mem", "app:two", "other:none")]
    assert list_probes(f"U:{usdt_app}:app:[gm]*") == [f"usdt:{usdt_app}:app:guarded",
                                                      f"usdt:{usdt_app}:app:mem"]
    assert list_probes(f"usdt:{usdt_app}") == list_probes(f"usdt:{usdt_app}:*:*")


def test_verbose_listing_shows_the_arguments_as_the_note_states_them(usdt_app):
    lines = describe_probe(f"usdt:{usdt_app}:app:two")
    assert lines == ["    arg0: -4@%edi | -8@%rsi", "    arg1: -8@%rsi | -4@$5"]
    assert describe_probe(f"usdt:{usdt_app}:app:mem") == [
        "    arg0: -8@(%rdx)", "    arg1: -4@8(%rdx,%rdi,4)", "    arg2: -8@counter(%rip)"]
    assert describe_probe(f"usdt:{usdt_app}:other:none") == []
    with pytest.raises(ListingError, match="no USDT probe"):
        describe_probe(f"usdt:{usdt_app}:app:nothere")


def test_cli_lists_with_arguments(usdt_app):
    r = subprocess.run([sys.executable, "-m", "pybpf.cli", "-lv", f"usdt:{usdt_app}:app:guarded"],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, f"usdt:{usdt_app}:app:guarded\n    arg0: -4@%edi\n"), r.stderr
