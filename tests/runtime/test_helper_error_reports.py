"""Failed helper calls as the runtime reports them (pybpf.runtime.helper_errors): bpftrace's warning
text and JSON record for one failure, the sums by helper and by map, the line at exit and the
Prometheus families. The kernel side (counters, records) is tested in tests/e2e/test_helper_errors.py."""

import errno
import json

from prometheus_client import CollectorRegistry, generate_latest

from pybpf.program import CompiledProgram, HelperErrorCount, HelperErrorSite
from pybpf.runtime.helper_errors import (by_helper, json_record, map_full, summary,
                                         warning_text)
from pybpf.runtime.metrics import helper_error_families

SOURCE = "BEGIN { @m[1] = 1; delete(@m[2]); $s = str(16); }"
INSERT = HelperErrorSite("map_update_elem", "@m", 0, True, "stdin:1:9-18",
                         (SOURCE, "        ~~~~~~~~~~"), 1, 9)
DELETE = HelperErrorSite("map_delete_elem", "@m", 0, True, "stdin:1:20-33",
                         (SOURCE, "                   ~~~~~~~~~~~~~"), 1, 20)
READ = HelperErrorSite("probe_read_str", "", 0, False, "stdin:1:40-47",
                       (SOURCE, "                                       ~~~~~~~"), 1, 40)


def test_a_full_map_warns_in_bpftraces_words():
    assert warning_text(INSERT, -errno.E2BIG) == (
        "stdin:1:9-18: WARNING: Map full; can't update element. Try increasing max_map_keys config\n"
        "Additional Info - helper: map_update_elem, retcode: -7\n"
        "BEGIN { @m[1] = 1; delete(@m[2]); $s = str(16); }\n"
        "        ~~~~~~~~~~")


def test_deleting_a_missing_key_warns_in_bpftraces_words():
    assert warning_text(DELETE, -errno.ENOENT).splitlines()[:2] == [
        "stdin:1:20-33: WARNING: Can't delete map element because it does not exist.",
        "Additional Info - helper: map_delete_elem, retcode: -2"]


def test_other_failures_are_strerror():
    assert warning_text(READ, -errno.EFAULT).splitlines()[:2] == [
        "stdin:1:40-47: WARNING: Bad address",
        "Additional Info - helper: probe_read_str, retcode: -14"]


def test_the_json_record_has_bpftraces_fields():
    assert json.loads(json_record(INSERT, -errno.E2BIG)) == {
        "type": "helper_error", "msg": "Argument list too long", "helper": "map_update_elem",
        "retcode": -7, "filename": "stdin", "line": 1, "col": 9}
    named = HelperErrorSite("probe_read_kernel", "", 0, True, "/tmp/a:b.bt:3:1-9", (), 3, 1)
    assert json.loads(json_record(named, -14))["filename"] == "/tmp/a:b.bt"


COUNTS = [HelperErrorCount("map_update_elem", "@m", "stdin:1:9-18", False, 1),
          HelperErrorCount("map_update_elem", "@m", "stdin:1:9-18", True, 6),
          HelperErrorCount("map_update_elem", "@n", "stdin:2:9-18", True, 0),
          HelperErrorCount("map_delete_elem", "@m", "stdin:1:20-33", False, 0),
          HelperErrorCount("probe_read_str", "", "stdin:1:40-47", False, 3)]


def test_counts_sum_by_helper_and_by_full_map():
    assert by_helper(COUNTS) == {"map_update_elem": 7, "map_delete_elem": 0, "probe_read_str": 3}
    assert map_full(COUNTS) == {"@m": 6, "@n": 0}


def test_the_line_at_exit_names_what_failed_and_which_maps_were_full():
    assert summary(COUNTS) == ("WARNING: 10 helper calls failed: map_update_elem 7 (map full: @m 6), "
                               "probe_read_str 3")
    assert summary([HelperErrorCount("map_delete_elem", "@m", "stdin:1:1-2", False, 1)]) == \
        "WARNING: 1 helper call failed: map_delete_elem 1"
    assert summary([c for c in COUNTS if not c.count]) is None
    assert summary([]) is None


class _Families:
    def __init__(self, counts):
        self.counts = counts

    def collect(self):
        return helper_error_families(self.counts)


def test_the_metric_families_are_counters_with_a_series_per_helper_and_map():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(COUNTS))
    text = generate_latest(registry).decode()
    assert "# TYPE pybpf_helper_errors_total counter" in text
    assert 'pybpf_helper_errors_total{helper="map_update_elem"} 7.0' in text
    assert 'pybpf_helper_errors_total{helper="map_delete_elem"} 0.0' in text
    assert 'pybpf_helper_errors_total{helper="probe_read_str"} 3.0' in text
    assert "# TYPE pybpf_map_full_total counter" in text
    assert 'pybpf_map_full_total{map="@m"} 6.0' in text
    assert 'pybpf_map_full_total{map="@n"} 0.0' in text


def test_sites_travel_in_the_compiled_programs_json():
    from pybpf.compiler import compile_source

    compiled = compile_source("BEGIN { @m[1] = count(); }")
    assert CompiledProgram.from_data(compiled.to_data()).helper_sites == compiled.helper_sites
    assert {(s.helper, s.map, s.errno) for s in compiled.helper_sites} == {
        ("map_update_elem", "@m", 0), ("map_update_elem", "@m", errno.E2BIG)}
