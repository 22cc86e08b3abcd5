"""How the runtime's errors read."""

from pybpf.runtime.errors import ENOTSUPP, NotSupportedError, ProbeAttachError


def test_the_kernel_internal_enotsupp_is_named():
    assert str(NotSupportedError("perf_event_open", ENOTSUPP)) == \
        "perf_event_open failed: ENOTSUPP (Operation not supported)"


def test_a_probe_the_kernel_refuses_reads_as_bpftrace_writes_it():
    error = ProbeAttachError("tracepoint:uprobes:stale", NotSupportedError("perf_event_open", ENOTSUPP))
    assert isinstance(error, NotSupportedError) and error.errno == ENOTSUPP
    assert error.render().splitlines() == [
        "ERROR: perf_event_open failed: ENOTSUPP (Operation not supported)",
        "ERROR: Unable to attach probe: tracepoint:uprobes:stale. If this is expected, set the "
        "'missing_probes' config variable to 'warn'.",
    ]
