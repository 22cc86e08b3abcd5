"""Check the C type definitions of a script's preamble against the kernel's BTF.

    struct nameidata { struct path path; struct qstr last; };      // dcsnoop.bt
    kprobe:lookup_fast { $nd = (struct nameidata *)arg0; ... }

bpftrace compiles such definitions with clang; pybpf compiles no C. A definition whose type the
kernel's BTF also has (tools define kernel types that headers do not export) is answered by BTF,
with a warning, since its layout is the one the kernel really has; one BTF lacks is an error.
"""

from __future__ import annotations

from pybpf import ast, btf
from pybpf.diagnostics import Diagnostics

_BTF_KINDS = {"struct": ("struct",), "union": ("union",), "enum": ("enum", "enum64"),
              "typedef": ("typedef",)}


def check_c_definitions(program: ast.Script, diags: Diagnostics) -> None:
    if not program.c_definitions:
        return
    try:
        kernel = btf.vmlinux()
    except btf.BtfError:
        kernel = None
    for d in program.c_definitions:
        what = d.name if d.kind == "typedef" else f"{d.kind} {d.name}"
        if kernel is not None and kernel.find(d.name, _BTF_KINDS[d.kind]) is not None:
            diags.warning(f"{what} is defined here and in the kernel's BTF: pybpf uses BTF's "
                          "definition (it compiles no C)", d.span)
        else:
            diags.error(f"{what}: types defined in a script are not supported yet (pybpf compiles "
                        "no C), and the kernel's BTF has no such type", d.span)
