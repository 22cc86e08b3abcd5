"""pybpf.lalr parses as Lark's own parser does: the same AST with the same spans (nodes, tokens,
positions of `?rule`s and parentheses), the same syntax errors at the same places, over every
example, hand-picked corner cases, generated programs and their mutations and truncations."""

import functools
import glob
import json
import os

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf import lalr, parser
from pybpf.grammar import tables
from tests.pybpf.test_grammar_properties import EXAMPLES, SETTINGS, mutated, programs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORNERS = [
    "",
    "BEGIN { }",
    "BEGIN { @x = (1 + 2) * (3); @y = ((4)); $z = (1, (2)); }",
    "BEGIN /(pid) > 1/ { @[comm, (pid)] = count(); }",
    "config = { max_map_keys = 8; } macro m($a, @b, c) { $a + c } BEGIN { @x = m($y, @b, (1)); }",
    "struct s { int a; }; typedef int t; BEGIN { printf(\"%d\\n\", sizeof(struct s)); }",
    "i:s:1 < @a = 1; if (1 > 2) { @b = 2; } >",
    "BEGIN { if $x { } else if $y { } else { } for ($i : 0..5) { } for $kv : @m { } unroll(2) { } }",
    "BEGIN { let $a: uint8 = 1; let $b; $c = (uint64 *)0; $d = (struct task_struct *)curtask; }",
    "BEGIN { $a = (x=1, y=\"s\"); $b = $a.x; @m[1].0; $c <<= 2; $d++; --$e; -$f; !$g; &$h; *$i; }",
    "BEGIN\n{\n\t// comment\n\t/* block\n comment */ printf(\"a\"); #line\n}\n",
    "tracepoint:syscalls:sys_enter_openat,\n  tracepoint:syscalls:sys_exit_openat /@x[tid]/ { }",
    "BEGIN { @a = offsetof(struct task_struct, se.vruntime); @b = 1_000; @c = 0x1fUL; @d = 1e3; }",
    "BEGIN { exit() }",
    # errors: unexpected tokens (one that another state would take, one at the end), characters
    "BEGIN { @x = ; }", "BEGIN { @x = 1", "BEGIN { @x = 1 } }", "BEGIN { ` }", "BEGIN { if }",
    "BEGIN { @x = \"unterminated }", "BEGIN { 1 +* 2; }", "kprobe:f / 1 { }",
]


@functools.cache
def _lark_parser() -> lark.Lark:
    with open(tables.GRAMMAR) as f:
        return lark.Lark(f.read(), **tables.OPTIONS)


def _with_lark(source: str):
    """What pybpf's parser gave when it ran Lark: Lark's tree, then the same actions on it."""
    actions = parser._ToAst()

    def convert(node):
        if isinstance(node, lark.Token):
            return lalr.Token(node.type, str(node), node.start_pos, node.line, node.column,
                              node.end_line, node.end_column, node.end_pos)
        if isinstance(node, lark.Tree):
            return getattr(actions, node.data)(node.meta, [convert(c) for c in node.children])
        return node
    try:
        return repr(convert(_lark_parser().parse(source)))
    except lark.exceptions.UnexpectedToken as e:
        return ("token", e.token.type, str(e.token), e.token.line, e.token.column)
    except lark.exceptions.UnexpectedCharacters as e:
        return ("characters", e.pos_in_stream, e.line, e.column)


def _with_lalr(source: str):
    try:
        return repr(parser._parser().parse(source, parser._ToAst()))
    except lalr.UnexpectedToken as e:
        return ("token", e.token.type, str(e.token), e.token.line, e.token.column)
    except lalr.UnexpectedCharacters as e:
        return ("characters", e.pos_in_stream, e.line, e.column)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "examples", "*.pbt"))),
                         ids=os.path.basename)
def test_every_example_parses_as_with_lark(path):
    with open(path) as f:
        source = f.read()
    assert _with_lalr(source) == _with_lark(source)


@pytest.mark.parametrize("source", CORNERS)
def test_corner_cases_and_errors_parse_as_with_lark(source):
    assert _with_lalr(source) == _with_lark(source)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.one_of(programs, mutated()))
def test_generated_and_mutated_programs_parse_as_with_lark(source):
    assert _with_lalr(source) == _with_lark(source)


def _children(rule) -> int | None:
    """How many children a rule's action gets (None: it varies)."""
    _origin, _action, length, _single, keep, after = rule
    if keep is None:
        return length
    return None if any(k[1] for k in keep) else len(keep) + sum(k[2] for k in keep) + after


def test_every_rule_that_can_make_a_value_has_an_action():
    with open(tables.GRAMMAR) as f:
        rules = json.loads(tables.build(f.read()))["lalr"]["rules"]
    names = {rule[1] for rule in rules if rule[1] and not (rule[3] and _children(rule) == 1)}
    assert [n for n in sorted(names) if not hasattr(parser._ToAst, n)] == []


def test_too_deep_is_found_while_parsing():
    with pytest.raises(lalr.TooDeep) as e:
        parser._parser().parse("BEGIN { @x = " + "+".join(["1"] * 200) + "; }", parser._ToAst(), 50)
    assert e.value.meta.line == 1


@functools.cache
def _state_lexers() -> list:
    """(Lark's lexer of a parse state, pybpf.lalr's with the same terminals) for each distinct
    one (by their terminals: two builds of the tables may number the states differently)."""
    contextual = _lark_parser().parser.lexer
    ours = {tuple(t.name for t in lexer.terminals): lexer for lexer in parser._parser().lexers}
    pairs = {id(lexer): (lexer, ours[tuple(t.name for t in lexer.scanner.terminals)])
             for lexer in [*contextual.lexers.values(), contextual.root_lexer]}
    return list(pairs.values())


def _lark_match(lexer, ours, text: str):
    """What Lark's state lexer matches at the start of text: its expression, all its terminals
    joined, the first that matches winning (then a keyword's word, by the same table as ours)."""
    for pattern in lexer.scanner._mres:
        m = pattern.match(text)
        if m:
            words = ours.unless.get(m.lastgroup)
            return m.group(0), (words.get(m.group(0), m.lastgroup) if words else m.lastgroup)
    return None


def _examples_text() -> str:
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.pbt"))):
        with open(path) as f:
            texts.append(f.read())
    return "\n".join(texts + CORNERS)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.data())
def test_each_state_lexer_matches_as_larks_joined_expression(data):
    """A state's lexer tries only the terminals the next character can start (grammar.tables'
    _starts), each compiled alone: it takes the token Lark's one expression per state takes,
    on text from the examples at any place and on arbitrary text (non-ASCII characters too)."""
    examples = _examples_text()
    slices = st.integers(0, len(examples) - 1).map(lambda i: examples[i:i + 80])
    first = st.sampled_from([chr(i) for i in range(128)] + ["é", "ٳ", "٣"])
    text = data.draw(st.one_of(slices, st.tuples(first, slices).map("".join),
                               st.text(first, min_size=1)))
    for lark_lexer, ours in _state_lexers():
        assert ours.match(text, 0) == _lark_match(lark_lexer, ours, text)
