"""pybpf: a bpftrace-like tracing language compiled to eBPF, in Python.

    import pybpf

    prog = pybpf.compile('tracepoint:syscalls:sys_enter_openat { @opens[comm] = count(); }')
    with prog.run() as trace:
        trace.wait(1.0)
        print(trace.maps["@opens"].get("bash", 0))

The library's guide is docs/library.md, its reference docs/api.md. Every error pybpf raises is a
pybpf.Error. The lower layers (pybpf.compile_source, pybpf.Session) stay importable.
"""

__version__ = "0.1.0"

from pybpf.api import (Bucket, Histogram, MapInfo, MapsView, MapView, Program, Stats,  # noqa: E402
                       Trace, compile)
from pybpf.compiler import CompileOptions, compile_source, compile_to_ir  # noqa: E402
from pybpf.diagnostics import CompileError  # noqa: E402
from pybpf.errors import PybpfError  # noqa: E402
from pybpf.program import CompiledProgram, HelperErrorCount  # noqa: E402

Error = PybpfError
"""The base of every error pybpf raises: a bad program, a probe this kernel cannot run, a refusal
by the kernel. `str(e)` is the message; `e.render()` what the pybpf command prints."""

# The run side's errors, imported on first use: compiling needs none of the runtime.
_RUNTIME_ERRORS = {"BpfError": "pybpf.runtime.errors", "VerifierError": "pybpf.runtime.errors",
                   "NotSupportedError": "pybpf.runtime.errors",
                   "BpfPermissionError": "pybpf.runtime.errors",
                   "ProbeUnavailableError": "pybpf.runtime.loader"}


def __getattr__(name: str) -> object:
    if name in _RUNTIME_ERRORS:
        import importlib
        return getattr(importlib.import_module(_RUNTIME_ERRORS[name]), name)
    if name == "Session":
        from pybpf.runtime.session import Session
        return Session
    if name == "make_output":
        from pybpf.runtime.output import make_output
        return make_output
    raise AttributeError(name)


__all__ = ["BpfError", "BpfPermissionError", "Bucket", "CompileError", "CompileOptions",
           "CompiledProgram", "Error", "HelperErrorCount", "Histogram", "MapInfo", "MapView",
           "MapsView", "NotSupportedError", "ProbeUnavailableError", "Program", "Session", "Stats", "Trace",
           "VerifierError", "compile", "compile_source", "compile_to_ir", "make_output"]
