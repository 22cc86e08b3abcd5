"""The C type definitions of a script's preamble and of the headers it includes, laid out as C
lays them out and added to the kernel's BTF as split BTF, so casts, members, sizeof and offsetof
treat them as kernel types.

    struct nameidata { struct path path; struct qstr last; };      // dcsnoop.bt
    kprobe:lookup_fast { $nd = (struct nameidata *)arg0; printf("%s\\n", str($nd->last.name)); }

bpftrace compiles such definitions with clang; pybpf compiles no C: this module reads the part of
C that type definitions use (struct, union, enum, typedef; pointers, arrays of any dimension,
bitfields, function pointers, `__attribute__((packed, aligned(N)))`, constant expressions with
enumerators and #defines) and lays records out by the x86-64 System V rules, which the BPF target
shares: a member at the next multiple of its alignment, a bitfield in the next bits unless it
would cross a unit of its type's size, unnamed bitfields not aligning the record. A name the
script does not define is the kernel's (BTF); the script's definition of a name BTF also has wins,
as clang's does in bpftrace. Headers' other declarations (functions, variables) are skipped.

The result is a Btf whose own types follow the kernel's (ScriptBtf: its own names are found
first), and the integer constants headers #define.
"""

from __future__ import annotations

import functools
import re

from pybpf import btf as B
from pybpf.diagnostics import Span
from pybpf.clayout import CError, Layout, Type
from pybpf.records import record
from pybpf.uapi.btf import (BTF_KIND_ARRAY, BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FUNC_PROTO,
                            BTF_KIND_FWD, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF, BTF_KIND_UNION)
from pybpf.include import DEFINE_HEAD, Header, without_comments

# C's integer types on x86-64 (LP64), and the kernel's fixed-width names for when BTF is missing.
_C_INTS = {
    ("char",): ("char", 1, True), ("signed", "char"): ("signed char", 1, True),
    ("unsigned", "char"): ("unsigned char", 1, False),
    ("short",): ("short", 2, True), ("unsigned", "short"): ("unsigned short", 2, False),
    ("int",): ("int", 4, True), ("unsigned", "int"): ("unsigned int", 4, False),
    ("long",): ("long", 8, True), ("unsigned", "long"): ("unsigned long", 8, False),
    ("long", "long"): ("long long", 8, True),
    ("unsigned", "long", "long"): ("unsigned long long", 8, False),
    ("_Bool",): ("_Bool", 1, False),
}
_FIXED_WIDTH = {f"{prefix}{bits}{suffix}": (bits // 8, signed)
                for bits in (8, 16, 32, 64)
                for prefix, suffix, signed in (("u", "", False), ("s", "", True), ("__u", "", False),
                                               ("__s", "", True), ("uint", "_t", False),
                                               ("int", "_t", True))}
_FIXED_WIDTH.update(bool=(1, False), size_t=(8, False), ssize_t=(8, True), pid_t=(4, True),
                    uid_t=(4, False), gid_t=(4, False))
_INT_WORDS = {"signed", "unsigned", "short", "long", "int", "char", "_Bool"}
_QUALIFIERS = {"const", "volatile", "static", "extern", "inline", "__inline", "__inline__",
               "register", "restrict", "__restrict", "__restrict__", "_Atomic", "__extension__",
               "__const", "__volatile__", "__user", "__kernel", "__iomem", "__rcu", "__percpu",
               "__force", "__must_check", "auto"}

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+|//[^\n]*|/\*.*?\*/)
  | (?P<newline>\n)
  | (?P<number>(?:0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<text>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op><<|>>|<=|>=|==|!=|&&|\|\||->|\.\.\.|[{}()\[\];,:*=+\-/%&|^~!<>?.\#])
""", re.S | re.X)


@record(frozen=True)
class _Token:
    kind: str
    text: str
    line: int           # in the text read (1-based)
    column: int


def _tokens(text: str) -> list[_Token]:
    out, line, start, pos = [], 1, 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise CError(f"unexpected character {text[pos]!r}", _Token("op", text[pos], line,
                                                                      pos - start + 1))
        kind = m.lastgroup
        if kind == "newline":
            line, start = line + 1, m.end()
        elif kind == "space":
            newlines = m[0].count("\n")
            if newlines:
                line, start = line + newlines, m.start() + m[0].rindex("\n") + 1
        else:
            out.append(_Token(kind, m[0], line, m.start() - start + 1))
        pos = m.end()
    return out


# A preprocessor line of a header: `#define NAME BODY` (continued with backslashes), `#include`.
_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(\w+)[ \t]*(.*)$")


def _preprocess(text: str) -> tuple[str, dict[str, str]]:
    """The text with its preprocessor lines blanked (line numbers kept) and its #defines (head:
    `NAME` or `NAME(a, b)` -> body). #includes were read already, and a header's conditionals
    evaluated as it was read (pybpf.include: the branches not taken are blank here)."""
    defines: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if m is None:
            i += 1
            continue
        first = i
        body = m[2]
        while body.endswith("\\") and i + 1 < len(lines):
            i += 1
            body = body[:-1] + " " + lines[i]
        if m[1] == "define":
            d = DEFINE_HEAD.match(body)
            if d:
                defines[d[0]] = without_comments(body[d.end():])
        for j in range(first, i + 1):
            lines[j] = ""
        i += 1
    return "\n".join(lines), defines


def header_defines(text: str) -> dict[str, str]:
    """A header's object-like #defines (NAME -> body)."""
    return {head: body for head, body in _preprocess(text)[1].items() if "(" not in head}


class _Parser:
    """Type definitions of one text, into a Layout. Names it defines go in `scope` (shared by
    every text of one script: headers first, then the preamble)."""

    def __init__(self, layout: Layout, scope: "_Scope", tokens: list[_Token]):
        self.layout, self.scope, self.toks, self.i = layout, scope, tokens, 0

    # -- tokens --
    def peek(self, ahead: int = 0) -> _Token | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def at(self, text: str) -> bool:
        t = self.peek()
        return t is not None and t.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> _Token:
        t = self.peek()
        if t is None or t.text != text:
            raise CError(f"expected '{text}'" + (f", found '{t.text}'" if t else " at the end"),
                         t or (self.toks[-1] if self.toks else None))
        self.i += 1
        return t

    def skip_balanced(self) -> None:
        """Past a (...), [...] or {...} group that starts here."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = []
        while True:
            t = self.peek()
            if t is None:
                raise CError("unbalanced brackets", self.toks[-1] if self.toks else None)
            self.i += 1
            if t.text in pairs:
                stack.append(pairs[t.text])
            elif stack and t.text == stack[-1]:
                stack.pop()
                if not stack:
                    return

    # -- top level --
    def definitions(self, tolerant: bool) -> None:
        """Every declaration of the text; `tolerant` (a header): one that is not a type
        definition (a function, a variable, an inline body) is skipped."""
        while self.peek() is not None:
            if self.accept(";"):
                continue
            start = self.i
            try:
                self.declaration()
            except CError:
                if not tolerant:
                    raise
                self.i = start
                self.skip_declaration()

    def skip_declaration(self) -> None:
        """Past a declaration that defines no type: to its ';', or to the end of a function's
        body."""
        previous = None
        while (t := self.peek()) is not None:
            if t.text == ";":
                self.i += 1
                return
            if t.text in "([{":
                self.skip_balanced()
                if t.text == "{" and previous == ")":
                    return
                previous = t.text
                continue
            previous = t.text
            self.i += 1

    def declaration(self) -> None:
        is_typedef = self.accept("typedef")
        base, _ = self.specifiers()
        if self.accept(";") or (self.peek() is None and not is_typedef):
            return                      # bpftrace's preamble takes `struct S { int x; }` bare
        while True:
            name, build, token = self.declarator()
            type_id = build(base)
            if is_typedef:
                if not name:
                    raise CError("a typedef needs a name", token)
                self.scope.typedefs[name] = self.layout.add(
                    Type(BTF_KIND_TYPEDEF, name, ref=type_id), 1)
            self.attributes()
            if self.accept("="):                            # a variable's initialiser
                while not self.at(",") and not self.at(";"):
                    if self.peek() is None:
                        break
                    if self.peek().text in "({[":
                        self.skip_balanced()
                    else:
                        self.i += 1
            if not self.accept(","):
                break
        if self.at("{"):
            raise CError("a function body", self.peek())
        self.expect(";")

    # -- specifiers --
    def attributes(self) -> tuple[bool, int]:
        """__attribute__((...)) lists here: (packed, aligned(N) or 0)."""
        packed, aligned = False, 0
        while self.at("__attribute__") or self.at("__attribute"):
            self.i += 1
            start = self.i
            self.skip_balanced()
            words = [t.text for t in self.toks[start:self.i]]
            packed = packed or "packed" in words or "__packed__" in words
            for k, w in enumerate(words):
                if w in ("aligned", "__aligned__"):
                    if k + 2 < len(words) and words[k + 1] == "(":
                        end, depth = k + 2, 0
                        while end < len(words) and (words[end] != ")" or depth):
                            depth += {"(": 1, ")": -1}.get(words[end], 0)
                            end += 1
                        aligned = max(aligned, self.constant_of(self.toks[start + k + 2:start + end]))
                    else:
                        aligned = max(aligned, 16)
        return packed, aligned

    def specifiers(self) -> tuple[int, _Token]:
        words: list[str] = []
        base: int | None = None
        first = self.peek()
        while (t := self.peek()) is not None:
            if t.text in _QUALIFIERS:
                self.i += 1
            elif t.text in ("__attribute__", "__attribute"):
                self.attributes()
            elif t.text in _INT_WORDS and base is None:
                words.append(t.text)
                self.i += 1
            elif t.text == "void" and base is None and not words:
                self.i += 1
                base = 0
            elif t.text in ("float", "double") and base is None and not words:
                self.i += 1
                base = self.layout.float_type(t.text)
            elif t.text in ("struct", "union") and base is None and not words:
                self.i += 1
                base = self.record(t.text)
            elif t.text == "enum" and base is None and not words:
                self.i += 1
                base = self.enum()
            elif t.kind == "name" and base is None and not words and self.scope.is_type(t.text):
                self.i += 1
                base = self.scope.type_named(t.text, self.layout)
            else:
                break
        if words:
            return self.int_from_words(words, first), first
        if base is None:
            raise CError("expected a type" + (f", found '{first.text}'" if first else ""), first)
        return base, first

    def int_from_words(self, words: list[str], token: _Token) -> int:
        """`unsigned`, `long unsigned int`, `short int`, ... as C reads them, in any order."""
        sign = [w for w in words if w in ("signed", "unsigned")]
        rest = sorted(w for w in words if w not in ("signed", "unsigned"))
        if rest != ["int"] and "int" in rest and len(rest) > 1:
            rest.remove("int")
        key = tuple(rest) or ("int",)
        if sign == ["unsigned"]:
            key = ("unsigned",) + key
        elif sign == ["signed"] and key == ("char",):
            key = ("signed", "char")
        found = _C_INTS.get(key) if len(sign) <= 1 else None
        if found is None:
            raise CError(f"unknown type '{' '.join(words)}'", token)
        return self.layout.int_type(*found)

    def record(self, kind: str) -> int:
        packed, aligned = self.attributes()
        name_token = self.peek() if self.peek() and self.peek().kind == "name" else None
        name = name_token.text if name_token else ""
        if name_token:
            self.i += 1
        if not self.at("{"):
            if not name:
                raise CError(f"expected a {kind} name or '{{'", self.peek())
            return self.scope.tag(kind, name, self.layout)
        if name and (kind, name) in self.scope.defined:
            raise CError(f"redefinition of {kind} {name}", name_token)
        type_id = self.scope.declare(kind, name, self.layout)
        self.expect("{")
        members: list[tuple[str, int, int | None, object]] = []
        while not self.accept("}"):
            if self.accept(";"):
                continue
            base, first = self.specifiers()
            if self.accept(";"):                            # an anonymous struct or union
                inner = self.layout.own(base)
                if inner is None or inner.kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION) or inner.name:
                    raise CError("a member needs a name", first)
                members.append(("", base, None, first))
                continue
            while True:
                m_name, build, token = self.declarator()
                width = None
                if self.accept(":"):
                    width = self.constant()
                elif not m_name:
                    raise CError("a member needs a name", token)
                self.attributes()
                members.append((m_name, build(base), width, token))
                if not self.accept(","):
                    break
            self.expect(";")
        more_packed, more_aligned = self.attributes()
        self.layout.record(type_id, members, packed or more_packed, max(aligned, more_aligned))
        if name:
            self.scope.defined.add((kind, name))
        return type_id

    def enum(self) -> int:
        self.attributes()
        name_token = self.peek() if self.peek() and self.peek().kind == "name" else None
        name = name_token.text if name_token else ""
        if name_token:
            self.i += 1
        if not self.at("{"):
            return self.scope.tag("enum", name, self.layout)
        if name and ("enum", name) in self.scope.defined:
            raise CError(f"redefinition of enum {name}", name_token)
        self.expect("{")
        values, value = [], 0
        while not self.accept("}"):
            token = self.peek()
            if token is None or token.kind != "name":
                raise CError("expected an enumerator", token)
            self.i += 1
            if self.accept("="):
                value = self.constant()
            values.append((token.text, value))
            self.scope.constants[token.text] = value
            value += 1
            if not self.accept(","):
                self.expect("}")
                break
        self.attributes()
        wide = any(not -(1 << 31) <= v < (1 << 32) for _, v in values)
        t = Type(BTF_KIND_ENUM64 if wide else BTF_KIND_ENUM, name, 8 if wide else 4, values=values,
                  signed=any(v < 0 for _, v in values))
        type_id = self.layout.add(t, t.size)
        if name:
            self.scope.tags[("enum", name)] = type_id
            self.scope.defined.add(("enum", name))
        return type_id

    # -- declarators --
    def declarator(self):
        """(name or '', a function from the base type to the declared one, a token for errors)."""
        pointers = 0
        while self.accept("*"):
            pointers += 1
            while (t := self.peek()) is not None and (t.text in _QUALIFIERS or
                                                      t.text.startswith("__attribute")):
                if t.text.startswith("__attribute"):
                    self.attributes()
                else:
                    self.i += 1
        token = self.peek()
        inner = None
        name = ""
        if self.at("(") and self.peek(1) is not None and self.peek(1).text in ("*", "("):
            self.i += 1
            name, inner, token = self.declarator()
            self.expect(")")
        elif token is not None and token.kind == "name" and token.text not in _QUALIFIERS:
            name = token.text
            self.i += 1
        suffixes: list[int | None] = []                 # an array's length, None: a function
        while True:
            if self.accept("["):
                if self.accept("]"):
                    suffixes.append(0)                  # a flexible array member
                    continue
                start = self.i
                while not self.at("]"):
                    if self.peek() is None:
                        raise CError("expected ']'", token)
                    self.i += 1
                suffixes.append(self.constant_of(self.toks[start:self.i]))
                self.i += 1
            elif self.at("("):
                self.skip_balanced()
                suffixes.append(None)
            else:
                break
        layout = self.layout

        def build(base: int) -> int:
            t = base
            for _ in range(pointers):
                t = layout.pointer(t)
            for n in reversed(suffixes):
                if n is None:
                    t = layout.add(Type(BTF_KIND_FUNC_PROTO, ref=t), 1)
                else:
                    if n < 0:
                        raise CError(f"array size is negative ({n})", token)
                    t = layout.add(Type(BTF_KIND_ARRAY, ref=t, nelems=n), 1)
            return inner(t) if inner else t

        return name, build, token

    # -- constant expressions --
    def constant(self) -> int:
        """An integer constant expression up to the next ',', ';', '}' or ']' at this level."""
        start, depth = self.i, 0
        while (t := self.peek()) is not None:
            if t.text in "([":
                depth += 1
            elif t.text in ")]":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and t.text in (",", ";", "}"):
                break
            self.i += 1
        return self.constant_of(self.toks[start:self.i])

    def constant_of(self, tokens: list[_Token]) -> int:
        if not tokens:
            raise CError("expected a constant", self.peek())
        return _Constant(tokens, self.scope, self.layout).value()


class _Constant:
    """C's integer constant expressions, by precedence climbing; names are enumerators, #defines
    and the kernel's enumerators."""

    _BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
               ("<<", ">>"), ("+", "-"), ("*", "/", "%")]

    def __init__(self, tokens: list[_Token], scope: "_Scope", layout: Layout, depth: int = 0):
        self.toks, self.i, self.scope, self.layout, self.depth = tokens, 0, scope, layout, depth

    def value(self) -> int:
        v = self.conditional()
        if self.i != len(self.toks):
            raise CError(f"unexpected '{self.toks[self.i].text}' in a constant", self.toks[self.i])
        return v

    def take(self) -> _Token:
        if self.i >= len(self.toks):
            raise CError("incomplete constant expression", self.toks[-1])
        self.i += 1
        return self.toks[self.i - 1]

    def at(self, text: str) -> bool:
        return self.i < len(self.toks) and self.toks[self.i].text == text

    def conditional(self) -> int:
        cond = self.binary(0)
        if self.at("?"):
            self.i += 1
            a = self.conditional()
            if not self.at(":"):
                raise CError("expected ':'", self.toks[min(self.i, len(self.toks) - 1)])
            self.i += 1
            b = self.conditional()
            return a if cond else b
        return cond

    def binary(self, level: int) -> int:
        if level == len(self._BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.i < len(self.toks) and self.toks[self.i].text in self._BINARY[level]:
            op = self.take()
            right = self.binary(level + 1)
            if op.text in ("/", "%") and right == 0:
                raise CError("division by zero in a constant", op)
            left = _apply(op.text, left, right)
        return left

    def unary(self) -> int:
        t = self.take()
        if t.text == "-":
            return -self.unary()
        if t.text == "+":
            return self.unary()
        if t.text == "~":
            return ~self.unary()
        if t.text == "!":
            return int(not self.unary())
        if t.text == "(":
            if self.i < len(self.toks) and self.scope.is_type_word(self.toks[self.i].text):
                while not self.at(")"):                 # a cast: (unsigned long)X keeps X
                    self.take()
                self.take()
                return self.unary()
            v = self.conditional()
            if not self.at(")"):
                raise CError("expected ')'", t)
            self.i += 1
            return v
        if t.kind == "number":
            digits = t.text.rstrip("uUlL")
            return int(digits, 16) if digits[:2].lower() == "0x" else \
                int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
        if t.kind == "text" and t.text.startswith("'"):
            body = t.text[1:-1].encode().decode("unicode_escape")
            return ord(body) if len(body) == 1 else 0
        if t.text == "sizeof":
            if not self.at("("):
                raise CError("sizeof needs parentheses here", t)
            start = self.i
            depth = 0
            while True:
                x = self.take()
                depth += {"(": 1, ")": -1}.get(x.text, 0)
                if depth == 0:
                    break
            parser = _Parser(self.layout, self.scope, self.toks[start + 1:self.i - 1])
            base, _ = parser.specifiers()
            _, build, _ = parser.declarator()
            return self.layout.sizeof(build(base))
        if t.kind == "name":
            return self.scope.constant(t, self.layout, self.depth)
        raise CError(f"unexpected '{t.text}' in a constant", t)


def constant_expression(tokens: list[_Token], names, depth: int = 0) -> int:
    """The value of C's integer constant expression `tokens` (c_tokens), its names answered by
    `names.constant(token, layout, depth)` (pybpf.preprocessor's #if conditions)."""
    return _Constant(tokens, names, None, depth).value()


c_tokens = _tokens


def _apply(op: str, a: int, b: int) -> int:
    if op == "/":
        return abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)     # C truncates
    if op == "%":
        return a - _apply("/", a, b) * b
    return {"||": lambda: int(bool(a or b)), "&&": lambda: int(bool(a and b)),
            "|": lambda: a | b, "^": lambda: a ^ b, "&": lambda: a & b,
            "==": lambda: int(a == b), "!=": lambda: int(a != b), "<": lambda: int(a < b),
            ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
            "<<": lambda: a << b, ">>": lambda: a >> b, "+": lambda: a + b,
            "-": lambda: a - b, "*": lambda: a * b}[op]()


class _Scope:
    """The names a script's definitions see: its own tags, typedefs, enumerators and #defines,
    then the kernel's."""

    def __init__(self, kernel: B.Btf | None):
        self.kernel = kernel
        self.tags: dict[tuple[str, str], int] = {}
        self.defined: set[tuple[str, str]] = set()
        self.typedefs: dict[str, int] = {}
        self.constants: dict[str, int] = {}
        self.defines: dict[str, str] = {}                               # object-like: NAME -> body
        self.functions: dict[str, tuple[tuple[str, ...], str]] = {}     # NAME -> (params, body)

    def define(self, head: str, body: str) -> None:
        """#define HEAD BODY, HEAD `NAME` or `NAME(a, b)`."""
        name, _, params = head.partition("(")
        if params:
            self.functions[name] = (tuple(p.strip() for p in params.rstrip(")").split(",")
                                          if p.strip()), body)
        else:
            self.defines[name] = body

    def expanded(self, tokens: list[_Token], hidden: frozenset = frozenset()) -> list[_Token]:
        """`tokens` with the calls of function-like #defines replaced by their bodies, the
        arguments put in for the parameters, as C's preprocessor does (no # or ##); the tokens
        put in take the place of the call, for errors. A macro is not expanded inside itself."""
        if not self.functions:
            return tokens
        out, i = [], 0
        while i < len(tokens):
            t = tokens[i]
            macro = self.functions.get(t.text) if t.kind == "name" and t.text not in hidden else None
            if macro is None or i + 1 >= len(tokens) or tokens[i + 1].text != "(":
                out.append(t)
                i += 1
                continue
            args, i = _arguments(tokens, i + 1)
            params, body = macro
            if args == [[]] and not params:
                args = []
            if len(args) != len(params):
                raise CError(f"macro {t.text} takes {len(params)} argument"
                             f"{'' if len(params) == 1 else 's'}, {len(args)} given", t)
            replaced: list[_Token] = []
            for b in _tokens(body):
                if b.kind == "name" and b.text in params:
                    replaced += self.expanded(args[params.index(b.text)], hidden)
                else:
                    replaced.append(_Token(b.kind, b.text, t.line, t.column))
            out += self.expanded(replaced, hidden | {t.text})
        return out

    def is_type(self, name: str) -> bool:
        if name in self.typedefs or name in _FIXED_WIDTH:
            return True
        return self.kernel is not None and self.kernel.find_id(name, ("typedef", "int")) is not None

    def is_type_word(self, name: str) -> bool:
        return name in _INT_WORDS or name in ("struct", "union", "enum", "void", "const") \
            or self.is_type(name)

    def type_named(self, name: str, layout: Layout) -> int:
        if name in self.typedefs:
            return self.typedefs[name]
        found = self.kernel.find_id(name, ("typedef", "int")) if self.kernel else None
        if found is not None:
            return found
        size, signed = _FIXED_WIDTH[name]
        return layout.int_type(name, size, signed)

    def declare(self, kind: str, name: str, layout: Layout) -> int:
        """The id a record being defined gets (filled in when its body is read); a forward
        reference to it made earlier now means it."""
        previous = self.tags.get((kind, name))
        t = layout.own(previous) if previous is not None else None
        if t is not None and t.kind == BTF_KIND_FWD:
            t.kind = BTF_KIND_UNION if kind == "union" else BTF_KIND_STRUCT
            return previous
        type_id = layout.add(Type(BTF_KIND_UNION if kind == "union" else BTF_KIND_STRUCT, name))
        if name:
            self.tags[(kind, name)] = type_id
        return type_id

    def tag(self, kind: str, name: str, layout: Layout) -> int:
        """`struct NAME` without a body: the script's, else the kernel's, else a forward
        declaration (usable behind a pointer)."""
        if (kind, name) in self.tags:
            return self.tags[(kind, name)]
        btf_kinds = ("enum", "enum64") if kind == "enum" else (kind,)
        found = self.kernel.find_id(name, btf_kinds) if self.kernel else None
        if found is None:
            if kind == "enum":
                raise CError(f"unknown enum {name}", None)
            found = layout.add(Type(BTF_KIND_FWD, name, is_union=kind == "union"))
        self.tags[(kind, name)] = found
        return found

    def constant(self, token: _Token, layout: Layout, depth: int) -> int:
        name = token.text
        if name in self.constants:
            return self.constants[name]
        if name in self.defines and depth < 32:
            body = _tokens(self.defines[name])
            if body:
                return _Constant(body, self, layout, depth + 1).value()
        if self.kernel is not None:
            found = self.kernel.enumerator(name)
            if found:
                return found[1].value
        from pybpf.uapi.headers import BY_HEADER
        for table in BY_HEADER.values():
            if name in table:
                return table[name]
        raise CError(f"unknown name '{name}' in a constant", token)


def _arguments(tokens: list[_Token], open_at: int) -> tuple[list[list[_Token]], int]:
    """A macro call's arguments, split at the commas outside parentheses, from the '(' at
    `open_at`; and the index after its ')'."""
    args: list[list[_Token]] = [[]]
    depth, i = 0, open_at + 1
    while i < len(tokens):
        t = tokens[i]
        if t.text == ")" and depth == 0:
            return args, i + 1
        depth += {"(": 1, ")": -1}.get(t.text, 0)
        if t.text == "," and depth == 0:
            args.append([])
        else:
            args[-1].append(t)
        i += 1
    raise CError("unterminated macro call", tokens[open_at])


class ScriptBtf(B.Btf):
    """The kernel's BTF with the script's types after it; the script's names are found first."""

    def find_all(self, name, kind=None):
        ids = super().find_all(name, kind)
        own = [i for i in ids if i >= self.start_id]
        return own + [i for i in ids if i < self.start_id]

    def enumerator(self, name):
        return self.own_enumerator(name) or (self.base.enumerator(name) if self.base else None)


@record
class ScriptTypes:
    """What the definitions give the compiler: `btf` (None when there were none), the integer
    constants the headers and the script #define, and the errors found (message, span)."""
    btf: B.Btf | None
    constants: dict[str, int]
    errors: list[tuple[str, Span]]


def _span_in(definition_span: Span, token: _Token | None) -> Span:
    if token is None:
        return definition_span
    line = definition_span.line + token.line - 1
    column = (definition_span.column if token.line == 1 else 1) + token.column - 1
    return Span(line, column, line, column + len(token.text))


@functools.lru_cache(maxsize=8)
def script_types(definitions: tuple, defines: tuple[tuple[str, str], ...],
                 headers: tuple[Header, ...]) -> ScriptTypes | None:
    """The script's C definitions (ast.CDefinition: text and span) and `headers` compiled over
    the kernel's BTF; None when there are neither. `defines`: the script's own #defines (head,
    body: pybpf.ast.Script.defines), for array sizes, enumerators and wherever they are called."""
    if not definitions and not headers:
        return None
    try:
        kernel = B.vmlinux()
    except B.BtfError:
        kernel = None
    layout = Layout(kernel)
    scope = _Scope(kernel)
    errors: list[tuple[str, Span]] = []
    for header in headers:
        text, header_defines = _preprocess(header.text)
        for head, body in header_defines.items():
            scope.define(head, body)
        try:
            _Parser(layout, scope, scope.expanded(_tokens(text))).definitions(tolerant=True)
        except CError as e:
            where = f":{e.at.line}" if e.at else ""
            errors.append((f"{header.name}{where}: {e}", Span(0, 0, 0, 0)))
    for head, body in defines:
        scope.define(head, body)
    for d in definitions:
        try:
            _Parser(layout, scope, scope.expanded(_tokens(d.text))).definitions(tolerant=False)
        except CError as e:
            errors.append((f"{d.kind} {d.name}: {e}" if d.name else str(e), _span_in(d.span, e.at)))
    constants = dict(scope.constants)
    for name in scope.defines:
        try:
            constants[name] = scope.constant(_Token("name", name, 1, 1), layout, 0)
        except (CError, RecursionError):
            pass
    if not layout.types:
        return ScriptTypes(None, constants, errors)
    blob = layout.encode()
    types = ScriptBtf(blob, base=kernel, name="script", cache=False)
    return ScriptTypes(types, constants, errors)


def types_of(program, headers: tuple[Header, ...] = ()) -> ScriptTypes | None:
    """The types of a script (ast.Script): its C definitions and `headers` (headers first, as
    #include puts them before the definitions)."""
    return script_types(program.c_definitions, program.defines, headers)
