"""pybpf: a bpftrace-like tracing language compiled to eBPF, in Python.

    import pybpf
    compiled = pybpf.compile_source('tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }')
    with pybpf.Session(compiled, pybpf.make_output("text", sys.stdout)) as session:
        session.start()
        while session.poll(1.0):
            ...
        session.stop()        # runs END, prints the maps, detaches everything
"""

__version__ = "0.1.0"

from pybpf.compiler import CompileOptions, compile_source, compile_to_ir  # noqa: E402
from pybpf.diagnostics import CompileError  # noqa: E402
from pybpf.program import CompiledProgram  # noqa: E402


def __getattr__(name):
    # The runtime is imported on first use: compiling needs none of it.
    if name == "Session":
        from pybpf.runtime.session import Session
        return Session
    if name == "make_output":
        from pybpf.runtime.output import make_output
        return make_output
    raise AttributeError(name)


__all__ = ["CompileError", "CompileOptions", "CompiledProgram", "Session", "compile_source",
           "compile_to_ir", "make_output"]
