"""The C preprocessor's conditionals of a script: `#if`, `#ifdef`, `#ifndef`, `#elif`, `#else` and
`#endif` evaluated as bpftrace's clang evaluates them, before the script is parsed.

    #ifndef BPFTRACE_HAVE_BTF          // bpftrace's tools: with BTF the kernel's types are used
    struct cfs_rq { ... };
    #endif

    text = active_text(source, diags, predefined={"BPFTRACE_HAVE_BTF": "1"})

The lines of a branch not taken are blanked (their line breaks kept, so every span still points
into the script as written); so are the `#define`s and `#undef`s in them, which therefore define
nothing. A condition is an integer constant expression over numbers and `#define`d names:
`defined(NAME)` / `defined NAME` is 1 or 0, a name defined as an expression is that expression, a
name defined as nothing or not defined is 0, as in C. Errors (an unbalanced `#endif`, a
condition that is not a constant) are reported at the directive.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from pybpf.diagnostics import Diagnostics, Span
from pybpf.include import DEFINE_HEAD, INCLUDED_NAME, without_comments

_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(\w+)[ \t]*(.*?)[ \t]*$")
_CONDITIONALS = ("if", "ifdef", "ifndef", "elif", "else", "endif")
MAX_EXPANSION_DEPTH = 32        # a name defined in terms of itself stops here


def predefined(headers: tuple = (), btf_path: str | None = None) -> dict[str, str]:
    """The names defined before the script's first line: BPFTRACE_HAVE_BTF when the kernel has
    BTF (btf_path, by default pybpf.btf's /sys/kernel/btf/vmlinux; as bpftrace defines it), and
    the object-like #defines of `headers` (pybpf.include.Header: --include FILEs and the #includes
    found in -I folders, which C reads before the script)."""
    from pybpf.btf import VMLINUX

    names = {"BPFTRACE_HAVE_BTF": "1"} if os.path.exists(btf_path or VMLINUX) else {}
    if headers:
        from pybpf.cdefs import header_defines
        for header in headers:
            names.update(header_defines(header.text))
    return names


def has_conditionals(source: str) -> bool:
    return "#" in source and re.search(r"^[ \t]*#[ \t]*(if|el|endif)", source, re.M) is not None


class _ConditionError(Exception):
    pass


def active_text(source: str, diags: Diagnostics, predefined: dict[str, str]) -> str | None:
    """`source` with the lines of branches not taken blanked; None once an error is reported."""
    return Conditionals(predefined).active_text(source, diags)


class Conditionals:
    """The names #defined so far, carried from one text to the next as C's preprocessor reads
    them: the --include files, then the script, each header read where its #include stands
    (pybpf.include), so a header's #if sees the script's #defines above its #include, and the
    script sees the header's."""

    def __init__(self, predefined: dict[str, str | None]):
        self.defines = dict(predefined)

    def active_text(self, source: str, diags: Diagnostics,
                    on_include: Callable[[str], None] | None = None) -> str | None:
        """`source` with the lines of branches not taken blanked, its #defines and #undefs
        applied to `defines`; `on_include(name)` is called at each #include taken. None once an
        error is reported."""
        defines = self.defines
        lines = source.split("\n")
        # One entry per open #if: [the branch now taken, a branch was taken, #else seen, line].
        stack: list[list] = []
        active = True
        for number, line in enumerate(lines, 1):
            m = _DIRECTIVE.match(line)
            directive = m[1] if m else None
            if directive not in _CONDITIONALS:
                if not active:
                    lines[number - 1] = ""
                elif directive == "define":
                    body = _continued(m[2], lines, number)
                    head = DEFINE_HEAD.match(body)
                    if head:
                        defines[head[1]] = None if head[2] else without_comments(body[head.end():])
                elif directive == "undef":
                    defines.pop(m[2].split()[0] if m[2].split() else "", None)
                elif directive == "include" and on_include is not None:
                    name = INCLUDED_NAME.match(m[2])
                    if name:
                        on_include(name[1])
                continue
            span = Span(number, 1, number, len(line) + 1)
            argument = without_comments(m[2])
            if directive in ("if", "ifdef", "ifndef"):
                taken = False
                if active:
                    try:
                        taken = _condition(directive, argument, defines)
                    except _ConditionError as e:
                        diags.error(f"#{directive}: {e}", span)
                        return None
                stack.append([taken, taken, False, number])
                active = active and taken
                continue
            if not stack:
                diags.error(f"#{directive} without #if", span)
                return None
            top = stack[-1]
            outer = all(entry[0] for entry in stack[:-1])
            if directive == "endif":
                stack.pop()
                active = outer
                continue
            if top[2]:
                diags.error(f"#{directive} after #else", span)
                return None
            if directive == "else":
                top[0], top[2] = not top[1], True
            else:                                           # elif
                taken = False
                if outer and not top[1]:
                    try:
                        taken = _condition("if", argument, defines)
                    except _ConditionError as e:
                        diags.error(f"#elif: {e}", span)
                        return None
                top[0] = taken
            top[1] = top[1] or top[0]
            active = outer and top[0]
        if stack:
            number = stack[-1][3]
            diags.error("unterminated conditional directive", Span(number, 1, number,
                                                                   len(lines[number - 1]) + 1))
            return None
        return "\n".join(lines)


def _continued(text: str, lines: list[str], after: int) -> str:
    """A directive's text with the lines its trailing backslashes continue it on (from line index
    `after`), joined as C joins them; those lines stay where they are."""
    while text.endswith("\\") and after < len(lines):
        text, after = text[:-1] + " " + lines[after].strip(), after + 1
    return text


def _condition(directive: str, argument: str, defines: dict[str, str | None]) -> bool:
    if directive != "if":
        if not re.fullmatch(r"[A-Za-z_]\w*", argument):
            raise _ConditionError("expected a name" + (f", found '{argument}'" if argument else ""))
        return (argument in defines) == (directive == "ifdef")
    from pybpf.cdefs import CError, c_tokens, constant_expression
    try:
        tokens = _defined_replaced(c_tokens(argument), defines)
        if not tokens:
            raise _ConditionError("expected an expression")
        return constant_expression(tokens, _Names(defines)) != 0
    except CError as e:
        raise _ConditionError(str(e)) from None


def _defined_replaced(tokens: list, defines: dict[str, str | None]) -> list:
    """`defined NAME` and `defined(NAME)` as the number 1 or 0."""
    out, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        if t.text != "defined":
            out.append(t)
            i += 1
            continue
        words = [x.text for x in tokens[i + 1:i + 4]]
        if words[:1] == ["("] and len(words) == 3 and words[2] == ")":
            name, i = words[1], i + 4
        elif words:
            name, i = words[0], i + 2
        else:
            raise _ConditionError("defined needs a name")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise _ConditionError(f"defined needs a name, found '{name}'")
        out.append(type(t)("number", "1" if name in defines else "0", t.line, t.column))
    return out


class _Names:
    """How a name in an #if condition reads (pybpf.cdefs' constant expressions ask): a name
    #defined as an expression is that expression; one defined as nothing, or not defined, is 0."""

    def __init__(self, defines: dict[str, str | None]):
        self.defines = defines

    def is_type(self, name: str) -> bool:           # no types in a condition (nor sizeof)
        return False

    is_type_word = is_type

    def constant(self, token, layout, depth: int) -> int:
        from pybpf.cdefs import CError, c_tokens, constant_expression
        if token.text in self.defines and self.defines[token.text] is None:
            raise CError(f"function-like macro '{token.text}' in a condition is not supported", token)
        body = self.defines.get(token.text)
        if not body or depth >= MAX_EXPANSION_DEPTH:
            return 0
        return constant_expression(c_tokens(body), self, depth + 1)
