"""Parse pass: source text -> pybpf.ast.Script, or an error with the span of the bad token.

    program = parse('BEGIN { printf("hi\\n"); exit(); }', filename="stdin")   # raises CompileError
    program = parse_source(diags)       # the pass: errors go into diags (it holds the source)

The Lark grammar (grammar/pbt.lark) is LALR with the contextual lexer. Lark builds its tables
(pybpf.grammar.tables) and pybpf.lalr parses with them, without importing Lark: the installed
package's tables, else the trusted cache's (pybpf.diskcache; built by Lark the first time).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys

from pybpf import ast, diskcache, trust
from pybpf.errors import PybpfError
from pybpf.grammar import tables
from pybpf.lalr import ParseError, Parser, Token, TooDeep, UnexpectedCharacters, UnexpectedToken
from pybpf.diagnostics import Diagnostics, Span
from pybpf.records import replace
from pybpf.include import includes_of  # #include <linux/sched.h>: its known constants (uapi/headers)
from pybpf.preprocessor import has_conditionals

_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'",
            "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "e": b"\x1b"}


_TABLES_FOLDER = "grammar"


@functools.cache
def _parser() -> Parser:
    """The parser, from tables when some match this grammar (the installed package's, else the
    cache's), else built by Lark (and its tables stored in the cache)."""
    with open(_package_file(tables.GRAMMAR)) as f:
        grammar = f.read()
    name = tables.name(grammar, diskcache.sha256)
    try:
        _package_file(tables.SHIPPED)
        blob = tables.shipped(name)
    except FileNotFoundError:       # a checkout: no tables are shipped
        blob = None
    blob = blob or diskcache.read(_TABLES_FOLDER, name)
    if blob is not None:
        try:
            return Parser(json.loads(blob)["lalr"])
        except (ValueError, KeyError, TypeError, IndexError):
            pass        # damaged, or of another layout under the same name: built again
    blob = tables.build(grammar)
    diskcache.write(_TABLES_FOLDER, name, blob)
    return Parser(json.loads(blob)["lalr"])


def _package_file(path: str) -> str:
    """path, a file installed with pybpf (the grammar, its shipped tables), once no other user could
    have written it or swapped it (pybpf.trust: it and every folder above it). FileNotFoundError
    when it is absent."""
    try:
        return trust.trusted_file(path)
    except trust.Untrusted as e:
        raise PybpfError(f"not reading pybpf's {os.path.basename(path)}: {e}") from None


def decode_string_literal(raw: str) -> bytes:
    """The bytes of a "..." literal with C escapes (\\n, \\t, \\xHH, \\NNN octal) decoded."""
    body, out, i = raw[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")     # a byte that is not UTF-8 is itself
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt]
            i += 2
        elif nxt == "x":
            digits = body[i + 2:i + 4]
            digits = digits[:2] if len(digits) == 2 and all(d in "0123456789abcdefABCDEF" for d in digits) else digits[:1]
            out.append(int(digits, 16))
            i += 2 + len(digits)
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out += nxt.encode("utf-8", "surrogateescape")
            i += 2
    return bytes(out)


# A literal's digits, then a C suffix (U, L, UL, LL, ...: ignored) or a duration's unit.
_LITERAL_SUFFIX = re.compile(r"(.*?)([uU]?[lL]{0,2}|[lL]{1,2}[uU]|ns|us|ms|s|m|h|d)")
_DURATIONS = {"ns": 1, "us": 1000, "ms": 1000 ** 2, "s": 1000 ** 3, "m": 60 * 1000 ** 3,
              "h": 3600 * 1000 ** 3, "d": 86400 * 1000 ** 3}


def integer_literal(text: str) -> int:
    """An integer literal's value, read as bpftrace reads one: `_` separators dropped, then 0x hex,
    0b binary, 0 octal (C's strtoull with base 0), else decimal. A value past 64 bits is left for
    the type checker to refuse; one with more digits than any 64-bit value is 2**64 at once, so a
    hostile literal costs no big-number work."""
    text = text.replace("_", "")
    if text[:2].lower() == "0x":        # hex digits include b, d and e: only U/L suffixes here
        digits, scale = text.rstrip("uUlL"), 1
    else:
        digits, unit = _LITERAL_SUFFIX.fullmatch(text).group(1, 2)
        scale = _DURATIONS.get(unit, 1)
    base = {"0x": 16, "0b": 2, "0o": 8}.get(digits[:2].lower())
    exponent = 0
    if base:
        digits = digits[2:]
    elif "e" in digits.lower():         # 2e3: m * 10^n, an integer (bpftrace has no floats)
        digits, exponent = re.split("[eE]", digits)
        base, exponent = 10, int(exponent) if len(exponent) <= 3 else 1000
    else:       # 08 and 09 are not octal: pybpf reads them as decimal
        base = 8 if digits[:1] == "0" and set(digits) <= set("01234567") else 10
    significant = digits.lstrip("0") or "0"
    if len(significant) + exponent > 64:
        return 1 << 64
    return int(significant, base) * 10 ** exponent * scale


def _span(meta) -> Span:
    return Span.of_meta(meta)


class _ToAst:
    """The AST nodes of the grammar's rules: pybpf.lalr calls the method of a rule's name (or
    alias) with its position and children as the rule reduces."""

    def start(self, meta, children):
        preamble, *items = children
        span = _span(meta) if not meta.empty else Span(1, 1, 1, 1)
        later_macros = tuple(i for i in items if isinstance(i, ast.Macro))
        return ast.Script(tuple(i for i in items if isinstance(i, ast.Probe)), span,
                          **{**preamble, "macros": preamble["macros"] + later_macros})

    def preamble(self, meta, children):
        return {"config": tuple(item for c in children if isinstance(c, tuple) for item in c),
                "macros": tuple(c for c in children if isinstance(c, ast.Macro)),
                "c_definitions": tuple(_c_definition(c) for c in children
                                       if isinstance(c, Token))}

    def macro_def(self, meta, children):
        name, *params, body = children
        return ast.Macro(str(name), tuple(str(p) for p in params if p is not None), body,
                         _span(meta))

    def macro_param(self, meta, tokens):
        return tokens[0]

    def config_block(self, meta, items):
        return tuple(items)

    def config_item(self, meta, children):
        name, value = children
        if value.type == "INT":
            written = integer_literal(str(value))
        elif value.type == "STRING":
            written = decode_string_literal(str(value)).decode()
        else:
            written = str(value)
        return ast.ConfigItem(str(name), written, _span(meta))

    def probe(self, meta, children):
        attach_points, *rest = children
        predicate = rest[0] if len(rest) == 2 else None
        return ast.Probe(attach_points, predicate, rest[-1], _span(meta))

    def attach_points(self, meta, tokens):
        return tuple(ast.AttachPointText(str(t), Span.of_token(t)) for t in tokens)

    def predicate(self, meta, children):
        return children[0]

    def block(self, meta, children):
        return children[0]

    inner_block = block

    def stmt_seq(self, meta, children):
        return tuple(c for c in children if c is not None)

    angle_seq = stmt_seq

    def if_stmt(self, meta, children):
        cond, then, otherwise = children
        if otherwise is None:
            otherwise = ()
        return ast.If(cond, then, otherwise, _span(meta))

    def else_part(self, meta, children):
        (body,) = children
        return (body,) if isinstance(body, ast.If) else body

    def while_stmt(self, meta, children):
        return ast.While(children[0], children[1], _span(meta))

    def unroll_stmt(self, meta, children):
        return ast.Unroll(children[0], children[1], _span(meta))

    def for_range(self, meta, children):
        var, start, end, body = children
        return ast.ForRange(var, start, end, body, _span(meta))

    def for_map(self, meta, children):
        var, m, body = children
        return ast.ForMap(var, m, body, _span(meta))

    def let_stmt(self, meta, children):
        _let, var, _colon, type_name, _equals, value = children
        return ast.VarDecl(var, type_name, value, _span(meta))

    def let_type(self, meta, children):
        words = [str(c) for c in children if c is not None]
        if words[0] == "string":
            return "".join(words)                                   # 'string', 'string[8]'
        stars = "".join(words[1:])                                  # a typedef's: 'my_t *'
        return words[0] + (" " + stars if stars else "")

    def assignment(self, meta, children):
        target, op, value = children
        compound = None if op == "=" else str(op)[:-1]
        return ast.Assign(target, compound, value, _span(meta))

    def expr_stmt(self, meta, children):
        return ast.ExprStatement(children[0], _span(meta))

    def jump_stmt(self, meta, children):
        return ast.Jump(str(children[0]), _span(meta))

    def ternary(self, meta, children):
        return ast.Ternary(*children, _span(meta))

    def _binary(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op), left, right, _span(meta))

    logical_or = logical_and = bit_or = bit_xor = bit_and = equality = relational = shift = \
        additive = multiplicative = _binary

    def unary(self, meta, children):
        op, operand = children
        return ast.Unary(str(op), operand, _span(meta))

    def pre_incdec(self, meta, children):
        op, target = children
        return ast.IncDec(str(op), True, target, _span(meta))

    def post_incdec(self, meta, children):
        target, op = children
        return ast.IncDec(str(op), False, target, _span(meta))

    def type_name(self, meta, tokens):
        words = [str(t).removesuffix("_t") if t.type == "INT_TYPE" else str(t)
                 for t in tokens if t is not None]
        if "[" in words:                                   # an array: 'uint8[8]', 'uint8[]'
            return "".join(words)
        stars = "".join(w for w in words if w == "*")
        base = " ".join(w for w in words if w != "*")
        return base + (" " + stars if stars else "")

    def cast(self, meta, children):
        type_name, operand = [c for c in children if not (isinstance(c, Token) and c in "()")]
        return ast.Cast(type_name, operand, _span(meta))

    def deref(self, meta, children):
        return ast.Deref(children[-1], _span(meta))

    def address_of(self, meta, children):
        return ast.AddressOf(children[-1], _span(meta))

    def sizeof_type(self, meta, children):
        return ast.SizeOf(children[0], None, _span(meta))

    def sizeof_expr(self, meta, children):
        return ast.SizeOf(None, children[0], _span(meta))

    def offsetof(self, meta, children):
        type_name, *fields = children
        return ast.OffsetOf(type_name, tuple(str(f) for f in fields), _span(meta))

    def field(self, meta, children):
        return ast.FieldAccess(children[0], str(children[2]), False, _span(meta))

    def arrow_field(self, meta, children):
        return ast.FieldAccess(children[0], str(children[2]), True, _span(meta))

    def index(self, meta, children):
        base, _open, index, _close = children
        return ast.Index(base, index, _span(meta))

    def tuple_index(self, meta, children):
        return ast.TupleIndex(children[0], int(children[2]), _span(meta))

    def integer(self, meta, children):
        return ast.Integer(integer_literal(str(children[0])), _span(meta))

    def string(self, meta, children):
        return ast.String(decode_string_literal(str(children[0])), _span(meta))

    def map(self, meta, children):
        name, *keys = children
        return ast.Map(str(name), tuple(keys) if keys else None, _span(meta))

    def var(self, meta, children):
        return ast.Variable(str(children[0]), _span(meta))

    def param(self, meta, children):
        return ast.PositionalParam(int(str(children[0])[1:]), _span(meta))

    def param_count(self, meta, children):
        return ast.ParamCount(_span(meta))

    def call(self, meta, children):
        name, *args = children
        return ast.Call(str(name), tuple(a for a in args if a is not None), _span(meta))

    def builtin(self, meta, children):
        return ast.Builtin(str(children[0]), _span(meta))

    def record_field(self, meta, children):
        name, value = children
        return _RecordField(str(name), Span.of_token(name), value)

    def tuple(self, meta, children):
        items = [c for c in children if c is not None]
        if not any(isinstance(c, _RecordField) for c in items):
            return ast.Tuple(tuple(items), _span(meta))
        return ast.Tuple(tuple(c.value if isinstance(c, _RecordField) else c for c in items), _span(meta),
                         tuple(c.name if isinstance(c, _RecordField) else "" for c in items),
                         tuple(c.name_span if isinstance(c, _RecordField) else c.span for c in items))


class _RecordField:
    """`name=value` inside parentheses, until the tuple it is in becomes an ast.Tuple."""
    __slots__ = ("name", "name_span", "value")

    def __init__(self, name: str, name_span: Span, value):
        self.name, self.name_span, self.value = name, name_span, value


_TOKEN_NAMES = {"SEMICOLON": ";", "RBRACE": "}", "LBRACE": "{", "RPAR": ")", "LPAR": "(",
                "$END": "end of file", "MORETHAN": ">", "LESSTHAN": "<", "COMMA": ","}
# What an expected terminal that is no fixed text is called in `expecting ...`.
_TERMINAL_KINDS = {"IDENT": "identifier", "FIELD_NAME": "identifier", "INT": "integer",
                   "STRING": "string", "VAR_NAME": "variable", "MAP_NAME": "map",
                   "ATTACH_POINT": "probe", "PARAM": "positional parameter", "INT_TYPE": "type",
                   "TYPEDEF_NAME": "type", "C_DEFINITION": "definition",
                   "COMPOUND_OP": "assignment", "PREDICATE_END": "/"}
# bison names the expected tokens when there are at most this many (YYERROR_VERBOSE_ARGS_MAXIMUM).
_MOST_EXPECTED = 4


def _expecting(error: UnexpectedToken, token: Token) -> str:
    """`, expecting X or Y` as bison writes it: when few tokens could come here, or, at the end of
    the file, the `}` a block still waits for. What could come is the parser state's terminals
    (pybpf.lalr gives them also when the contextual lexer found no token this state takes)."""
    literals = _parser().literals
    names = set()
    for name in error.expected:
        if name == "$END":
            names.add("end of file")
        elif name in _TERMINAL_KINDS:
            names.add(_TERMINAL_KINDS[name])
        else:
            names.add(literals.get(name, name.lower()))
    if len(names) > _MOST_EXPECTED:
        if token.type != "$END" or "}" not in names:
            return ""
        names = {"}"}
    return ", expecting " + " or ".join(sorted(names, key=lambda n: (n[0].isalnum(), n)))


def parse(source: str, filename: str = "stdin") -> ast.Script:
    diags = Diagnostics(source, filename)
    program = parse_source(diags)
    if program is None:
        raise diags.as_error()
    return program


def parse_source(diags: Diagnostics, headers: tuple = ()) -> ast.Script | None:
    """diags.source parsed; None once an error is reported in diags. Its #if/#ifdef conditionals
    are evaluated first (pybpf.preprocessor), over BPFTRACE_HAVE_BTF and `headers`' #defines."""
    source = diags.source
    if has_conditionals(source):
        from pybpf.preprocessor import active_text, predefined
        source = active_text(source, diags, predefined(headers))
        if source is None:
            return None
    limit = nesting_limit()
    try:
        program = _parser().parse(source, _ToAst(), limit, on_token=_TypeNames(source, headers).retype)
    except UnexpectedToken as e:
        tok: Token = e.token
        text = _TOKEN_NAMES.get(tok.type, str(tok)) if tok.type != "$END" else "end of file"
        if tok.type == "$END":
            line, col = _end_position(source)
            span = Span(line, col, line, col + 1)
        else:
            span = Span.of_token(tok)
            cast = _UNKNOWN_CAST.search(source, max(0, tok.start_pos - 200), tok.start_pos)
            if cast:            # `(NAME) operand`: a cast to a type that no typedef names
                line = source.count("\n", 0, cast.start(1)) + 1
                column = cast.start(1) - source.rfind("\n", 0, cast.start(1))
                diags.error(f"Unknown type: {cast[2]}",
                            Span(line, column, line, column + cast.end(1) - cast.start(1)))
                return None
        diags.error(f"syntax error, unexpected {text}{_expecting(e, tok)}", span)
        return None
    except UnexpectedCharacters as e:
        char = source[e.pos_in_stream]
        # A byte that is not UTF-8 comes as a lone surrogate (the CLI reads scripts as bytes).
        what = f"byte {ord(char) - 0xDC00:#04x} (not UTF-8)" if "\udc80" <= char <= "\udcff" else repr(char)
        diags.error(f"syntax error, unexpected {what}", Span(e.line, e.column, e.line, e.column + 1))
        return None
    except TooDeep as e:
        diags.error(f"the program nests too deeply here: pybpf compiles up to {limit} levels "
                    f"of expressions and blocks", _span(e.meta))
        return None
    includes = tuple(includes_of(source))
    found = list(_DEFINE.finditer(source))
    defines = tuple(d for d in map(_define, found) if d is not None)
    if not includes and not defines and not found:
        return program
    return replace(program, includes=includes, macros=defines + program.macros,
                   defines=tuple((m[1] + (m[2] or ""), m[4]) for m in found))


# After an IDENT, what makes it a cast's type if it names one: stars, then ')' and an operand.
# sizeof(NAME) and offsetof(NAME, f) need no operand.
_WORD_BEFORE = re.compile(r"\w+$")
_POINTER_CAST = re.compile(r"\s*\*[\s*]*\)")
_UNKNOWN_CAST = re.compile(r"(\(\s*([A-Za-z_]\w*)\s*\))\s*$")
_CAST_AFTER = re.compile(r"[\s*]*\)\s*[\w$@(\"'!~*&+-]")


class _TypeNames:
    """The typedef names a script may cast to (and take sizeof and offsetof of): its own (typedef
    ... NAME;, as the preamble is read) and the kernel's (BTF), asked only for an IDENT that
    stands as a cast's type would, `(NAME)` before an operand, so most scripts never load BTF
    here. `(NAME *)` is a type whatever NAME is: the type checker says when it names none."""

    def __init__(self, source: str, headers: tuple = ()):
        self.source = source
        self.script: set[str] = {_typedef_name(m[0]) for header in headers
                                 for m in _TYPEDEF.finditer(header.text)}

    def retype(self, token: Token) -> None:
        """pybpf.lalr calls this with each token before parsing it. C's grammar needs to know
        typedef names, `(my_t *)p` being a cast and `(pid) * 2` a product: an IDENT that names a
        typedef where a cast's type stands becomes a TYPEDEF_NAME; a script's typedef is known
        from where the preamble defines it."""
        if token.type in ("IDENT", "FIELD_NAME") and self.is_cast_type(token):
            token.type = "TYPEDEF_NAME"
        elif token.type == "C_DEFINITION" and token.startswith("typedef"):
            self.script.add(_typedef_name(str(token)))

    def is_cast_type(self, token: Token) -> bool:
        source, i = self.source, token.start_pos - 1
        while i >= 0 and source[i] in " \t\n":
            i -= 1
        if i < 0 or source[i] != "(":
            return False
        j = i - 1
        while j >= 0 and source[j] in " \t\n":
            j -= 1
        if _POINTER_CAST.match(source, token.end_pos):
            return True             # `(NAME *)` is no expression: a type, known or not (checked later)
        word = _WORD_BEFORE.search(source, max(0, j - 8), j + 1)
        if not (word and word[0] in ("sizeof", "offsetof")) and \
                not _CAST_AFTER.match(source, token.end_pos):
            return False
        return str(token) in self.script or _kernel_typedef(str(token))


@functools.lru_cache(maxsize=256)
def _kernel_typedef(name: str) -> bool:
    from pybpf import btf
    try:
        return btf.vmlinux().find_id(name, "typedef") is not None
    except btf.BtfError:
        return False


# A typedef of a header, as the grammar's C_DEFINITION reads one.
_TYPEDEF = re.compile(r"\btypedef\s[^;{]*(\{([^{}]|\{([^{}]|\{[^{}]*\})*\})*\}[^;]*)?;")


def _typedef_name(text: str) -> str:
    """typedef ... NAME; (the name is the last word, also of `typedef struct {...} NAME;`)"""
    return re.findall(r"[A-Za-z_]\w*", text.rsplit("}", 1)[-1])[-1]


def _c_definition(token: Token) -> ast.CDefinition:
    text = str(token)
    if text.startswith("typedef"):
        return ast.CDefinition("typedef", _typedef_name(text), text, Span.of_token(token))
    kind, name = re.match(r"(\w+)\s+(\w+)", text).groups()
    return ast.CDefinition(kind, name, text, Span.of_token(token))


# `#define NAME body` and `#define NAME(a, b) body` on one line.
_DEFINE = re.compile(r'^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\(([^)]*)\))?[ \t]+(.*[^\\\s])[ \t]*$',
                     re.M)


def _define(m: re.Match) -> ast.Macro | None:
    """A #define whose body is an expression, as a macro that is not hygienic (C's are textual);
    None for the others (types, statements, partial syntax), which the script cannot use."""
    name, params = m[1], tuple(p.strip() for p in (m[3] or "").split(",") if p.strip())
    if any(not p.isidentifier() for p in params):
        return None
    line = m.string.count("\n", 0, m.start()) + 1
    line_start = m.string.rfind("\n", 0, m.start(4)) + 1
    # The body parsed where it stands: the same line and columns, so spans point into the script.
    head = m.start(4) - line_start
    padded = "\n" * (line - 1) + "BEGIN{".ljust(head) + m[4] + "}"
    try:
        body = _parser().parse(padded, _ToAst()).probes[0].body
    except ParseError:
        return None
    if len(body) != 1 or not isinstance(body[0], ast.ExprStatement):
        return None
    return ast.Macro(name, params, body, Span(line, 1, line, len(m[0]) + 1), hygienic=False)


# The passes after parsing recurse once per level of the tree (bpftrace compiles a 5000-term sum);
# pybpf.cli runs them on a stack and under a recursion limit sized for this many levels.
MAX_NESTING = 10_000
# Python frames the passes take per level: three at most, measured over sums, nested ifs, casts
# and unary chains; five leaves room.
FRAMES_PER_LEVEL = 5


def nesting_limit() -> int:
    """The deepest tree the passes can compile under the current recursion limit, so that a library
    caller with Python's default (1000) gets a CompileError, never a RecursionError."""
    return min(MAX_NESTING, sys.getrecursionlimit() // FRAMES_PER_LEVEL)


def _end_position(source: str) -> tuple[int, int]:
    lines = source.rstrip("\n").split("\n")
    return len(lines), len(lines[-1]) + 1
