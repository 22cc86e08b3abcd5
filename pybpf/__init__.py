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

from pybpf.errors import PybpfError  # noqa: E402

TYPE_CHECKING = False       # typing's own would import typing at every start
if TYPE_CHECKING:
    from pybpf.api import (Bucket, Histogram, MapInfo, MapsView, MapView, Program, Stats,  # noqa: F401
                           Trace, compile)
    from pybpf.compiler import CompileOptions, compile_source, compile_to_ir  # noqa: F401
    from pybpf.diagnostics import CompileError  # noqa: F401
    from pybpf.program import CompiledProgram, HelperErrorCount  # noqa: F401
    from pybpf.runtime.errors import BpfError, BpfPermissionError, NotSupportedError, VerifierError  # noqa: F401
    from pybpf.runtime.loader import ProbeUnavailableError  # noqa: F401
    from pybpf.runtime.output import Output, make_output  # noqa: F401
    from pybpf.runtime.session import Session  # noqa: F401
    from pybpf.runtime.symbols import Stack  # noqa: F401
    from pybpf.runtime.values import Record  # noqa: F401

Error = PybpfError
"""The base of every error pybpf raises: a bad program, a probe this kernel cannot run, a refusal
by the kernel. `str(e)` is the message; `e.render()` what the pybpf command prints."""

# Imported on first use (PEP 562): the command imports this package on every start, and needs none
# of the library's API (the compiler, the map kinds: ~14 ms of imports) on a cache hit, nor the run
# side's errors to compile.
_LAZY = {"Bucket": "pybpf.api", "Histogram": "pybpf.api", "MapInfo": "pybpf.api",
         "MapsView": "pybpf.api", "MapView": "pybpf.api", "Program": "pybpf.api", "Stats": "pybpf.api",
         "Trace": "pybpf.api", "compile": "pybpf.api",
         "CompileOptions": "pybpf.compiler", "compile_source": "pybpf.compiler",
         "compile_to_ir": "pybpf.compiler", "CompileError": "pybpf.diagnostics",
         "CompiledProgram": "pybpf.program", "HelperErrorCount": "pybpf.program",
         "BpfError": "pybpf.runtime.errors", "VerifierError": "pybpf.runtime.errors",
         "NotSupportedError": "pybpf.runtime.errors", "BpfPermissionError": "pybpf.runtime.errors",
         "ProbeUnavailableError": "pybpf.runtime.loader", "Session": "pybpf.runtime.session",
         "make_output": "pybpf.runtime.output", "Output": "pybpf.runtime.output",
         "Record": "pybpf.runtime.values",
         "Stack": "pybpf.runtime.symbols"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import sys      # not importlib.import_module: importlib (and warnings) cost ~0.6 ms a start

        __import__(_LAZY[name])
        value = getattr(sys.modules[_LAZY[name]], name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pybpf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["BpfError", "BpfPermissionError", "Bucket", "CompileError", "CompileOptions",
           "CompiledProgram", "Error", "HelperErrorCount", "Histogram", "MapInfo", "MapView", "MapsView",
           "NotSupportedError", "Output", "ProbeUnavailableError", "Program", "Record", "Session", "Stack", "Stats",
           "Trace",
           "VerifierError", "compile", "compile_source", "compile_to_ir", "make_output"]
