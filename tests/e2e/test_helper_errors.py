"""Failed helper calls against the kernel: a map filled past max_map_keys counts exactly the inserts
it refused, warns as bpftrace does with the statement's span, and says so once at exit; a read of
a bad address is counted, and warned about with -k; the library and the metrics read the counts."""

import errno
import io
import json
import os

import pytest
from prometheus_client import generate_latest

import pybpf
from pybpf.runtime.helper_errors import by_helper, map_full
from pybpf.runtime.metrics import SessionCollector, make_registry
from pybpf.runtime.output import make_output
from pybpf.runtime.session import Session

from e2e_helpers import run_pybpf

# 10 distinct keys into maps of 4 entries: 6 refused inserts each, in one run of BEGIN.
FILL = ("config = { max_map_keys = 4 }\n"
        "BEGIN { $i = 0; while ($i < 10) { @m[$i] = 1; @c[$i] = count(); $i++; } exit(); }")
M_SPAN = ("stdin:2:35-45", "BEGIN { $i = 0; while ($i < 10) { @m[$i] = 1; @c[$i] = count(); $i++; } exit(); }",
          "                                  ~~~~~~~~~~")
C_SPAN = ("stdin:2:47-63", "                                              ~~~~~~~~~~~~~~~~")
FULL_WARNING = "WARNING: Map full; can't update element. Try increasing max_map_keys config"
BAD_READ = 'BEGIN { $s = str(16); printf("[%s]\\n", $s); exit(); }'


@pytest.mark.kernel
def test_the_library_counts_each_refused_insert_of_a_full_map():
    with pybpf.compile(FILL).run() as trace:
        trace.wait(10)
    counts = trace.helper_errors()
    assert map_full(counts) == {"@m": 6, "@c": 6}
    assert by_helper(counts) == {"map_update_elem": 12}
    full = {c.map: c for c in counts if c.map_full}
    assert full["@m"].location == M_SPAN[0] and full["@c"].location == C_SPAN[0]
    assert len(trace.maps["@m"]) == 4 and len(trace.maps["@c"]) == 4


@pytest.mark.kernel
def test_a_full_map_warns_per_refused_insert_with_its_span_and_once_at_exit():
    done = run_pybpf(["-e", FILL])
    assert done.returncode == 0, done
    lines = done.stderr.splitlines()
    m_warning = [f"{M_SPAN[0]}: {FULL_WARNING}", "Additional Info - helper: map_update_elem, retcode: -7",
                 M_SPAN[1], M_SPAN[2]]
    c_warning = [f"{C_SPAN[0]}: {FULL_WARNING}", "Additional Info - helper: map_update_elem, retcode: -7",
                 M_SPAN[1], C_SPAN[1]]
    assert lines == (m_warning + c_warning) * 6 + [
        "WARNING: 12 helper calls failed: map_update_elem 12 (map full: @m 6, @c 6)"]
    assert done.stdout.count("@m[") == 4 and done.stdout.count("@c[") == 4


@pytest.mark.kernel
def test_the_max_map_keys_variable_fills_the_map_as_the_config_block_does():
    source = FILL.split("\n", 1)[1]
    done = run_pybpf(["-f", "json", "-e", source], env={**os.environ, "BPFTRACE_MAX_MAP_KEYS": "3"})
    assert done.returncode == 0, done
    records = [json.loads(line) for line in done.stdout.splitlines()]
    errors = [r for r in records if r["type"] == "helper_error"]
    assert len(errors) == 14                   # 7 refused inserts into each map
    assert errors[0] == {"type": "helper_error", "msg": "Argument list too long",
                         "helper": "map_update_elem", "retcode": -errno.E2BIG, "filename": "stdin",
                         "line": 1, "col": 35}
    assert done.stderr.splitlines()[-1] == \
        "WARNING: 14 helper calls failed: map_update_elem 14 (map full: @m 7, @c 7)"


@pytest.mark.kernel
def test_no_warnings_prints_none_but_still_counts():
    done = run_pybpf(["--no-warnings", "-e", FILL])
    assert done.returncode == 0 and done.stderr == "", done
    with pybpf.compile(FILL, options=pybpf.CompileOptions(warning_level=0)).run() as trace:
        trace.wait(10)
    assert map_full(trace.helper_errors()) == {"@m": 6, "@c": 6}


@pytest.mark.kernel
def test_a_read_of_a_bad_address_is_counted_and_warned_about_with_k():
    quiet = run_pybpf(["-e", BAD_READ])
    assert quiet.returncode == 0 and "[]" in quiet.stdout, quiet
    assert quiet.stderr == "WARNING: 1 helper call failed: probe_read_str 1\n"
    warned = run_pybpf(["-k", "-e", BAD_READ])
    assert warned.stderr.splitlines() == [
        "stdin:1:14-21: WARNING: Bad address",
        "Additional Info - helper: probe_read_str, retcode: -14",
        BAD_READ,
        "             ~~~~~~~",
        "WARNING: 1 helper call failed: probe_read_str 1"]
    # 0.17's -kk is refused as 0.26 refuses it (test_options.py)
    assert run_pybpf(["-kk", "-e", BAD_READ]).stderr.startswith("ERROR: USAGE: -kk has been deprecated")


@pytest.mark.kernel
def test_deleting_a_missing_key_warns_as_bpftrace_does():
    done = run_pybpf(["-e", "BEGIN { @m[1] = 1; delete(@m[2]); exit(); }"])
    assert done.stderr.splitlines()[:2] == [
        "stdin:1:20-33: WARNING: Can't delete map element because it does not exist.",
        "Additional Info - helper: map_delete_elem, retcode: -2"]


@pytest.mark.kernel
def test_the_metrics_endpoint_counts_the_runs_failures():
    compiled = pybpf.compile_source(FILL + "\nBEGIN { $s = str(16); }")
    with Session(compiled, make_output("text", io.StringIO()), warn=lambda text: None) as session:
        session.start()
        while session.poll(0.2):
            pass
        registry = make_registry(SessionCollector(session))      # what --metrics serves
        text = generate_latest(registry).decode()
    assert 'pybpf_helper_errors_total{helper="map_update_elem"} 12.0' in text
    assert 'pybpf_helper_errors_total{helper="probe_read_str"} 1.0' in text
    assert 'pybpf_map_full_total{map="@m"} 6.0' in text
    assert 'pybpf_map_full_total{map="@c"} 6.0' in text
    assert "pybpf_m{key=" in text                             # beside the maps' own families
