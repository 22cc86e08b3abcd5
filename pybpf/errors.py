"""The base of every error pybpf reports to its user.

    try:
        compiled = compile_program(source, "stdin", options)
    except PybpfError as e:
        print(e.render(), file=sys.stderr)      # 'ERROR: ...', or a compile error's diagnostics

Anything else that escapes is a bug in pybpf. A leaf module: it imports nothing of pybpf's, so the
compiler, the backend and the runtime can all derive from it.
"""

from __future__ import annotations


class PybpfError(Exception):
    """An error whose message is for the user as it is: a bad input, a refusal, a missing feature."""

    def render(self) -> str:
        """The whole report as the command line prints it."""
        return f"ERROR: {self}"
