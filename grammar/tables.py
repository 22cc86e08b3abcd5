"""The parser's LALR tables: built by Lark from pbt.lark, kept as JSON (never Lark's own cache=, a
pickle: loading one runs code), read by pybpf.lalr, which parses as Lark's parser does without
importing Lark (its import and its own tables' loading were ~45 ms of every compile).

    blob = build(grammar)                          # ~100 ms: Lark's LALR analysis
    shipped(name(grammar, hashlib.sha256))         # the tables an installed package carries, or None

pybpf.parser keeps built tables in the trusted cache (pybpf.diskcache). A pip-installed pybpf also
carries them beside the grammar (SHIPPED, written by setup.py's build step with this module), so
even a start with an empty cache loads them instead of building them. They are used only when
their name matches: the same grammar, options and table format. This module imports no other
pybpf module: setup.py loads it from its file, before pybpf is installed.
"""

from __future__ import annotations

import json
import os

OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)
# The layout of the JSON below, for pybpf.lalr: a new layout is a new name.
FORMAT = "pybpf.lalr 3"
GRAMMAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pbt.lark")
SHIPPED = os.path.join(os.path.dirname(GRAMMAR), "pbt-tables.json")


def name(grammar: str, sha256) -> str:
    """What the tables are for: the grammar, the options and the format, as a file name. The
    caller gives the SHA-256 (hashlib's loads OpenSSL, which a compile need not)."""
    return sha256(f"{FORMAT}|{OPTIONS}|{grammar}".encode()).hexdigest() + ".json"


def build(grammar: str) -> bytes:
    """The tables of the LALR parser Lark makes of the grammar, as JSON with their name: what
    pybpf.lalr needs to lex and parse as Lark's parser does, without importing Lark.

    - states: parse state -> {symbol: [0, next state] (shift) or [1, rule] (reduce)}, with the
      start and end states;
    - terminals: each terminal's regular expression, with the ASCII characters a match of it can
      start with and whether it can start with another character (_starts);
    - lexers: each distinct state lexer of Lark's contextual lexer, as it builds it: its terminals
      in the order they are tried (Lark joins their expressions into one, a named group each: the
      first that matches wins), the words that a terminal's match turns into a keyword ("unless"),
      and which terminals are ignored; `lexer` gives each state's, `root` the lexer of all
      terminals (used for error messages);
    - rules: [the rule's name, its action's ('' for an inlined `_rule`), length, whether a single
      child is its value, the children kept ([index, inline it, Nones before]) or None for all,
      Nones after];
    - literals: each terminal that is a fixed text, with that text (syntax errors name them)."""
    import hashlib

    import lark
    from lark.parse_tree_builder import ChildFilterLALR, maybe_create_child_filter

    parser = lark.Lark(grammar, **OPTIONS)
    frontend = parser.parser
    table = frontend.parser._parse_table
    rules: dict = {}
    states = {state: {symbol: [0, arg] if action.name == "Shift" else [1, _rule_id(rules, arg)]
                      for symbol, (action, arg) in actions.items()}
              for state, actions in table.states.items()}
    lexers: dict = {}
    terminals: dict = {}
    contextual = frontend.lexer
    state_lexers = {state: _lexer_id(lexers, terminals, lexer) for state, lexer in contextual.lexers.items()}
    root = _lexer_id(lexers, terminals, contextual.root_lexer)
    rule_rows = [None] * len(rules)
    for rule, number in rules.items():
        alias, options = rule.alias, rule.options
        action = alias or options.template_source or rule.origin.name
        made = maybe_create_child_filter(rule.expansion, options.keep_all_tokens, False,
                                         options.empty_indices)
        if made is None:
            keep, after = None, 0
        elif made.func is ChildFilterLALR:
            keep, after = [list(k) for k in made.args[0]], made.args[1]
        else:
            keep, after = [[i, inline, 0] for i, inline in made.args[0]], 0
        rule_rows[number] = [rule.origin.name, "" if action.startswith("_") else action,
                             len(rule.expansion), bool(options.expand1 and not alias), keep, after]
    data = {"states": {str(k): v for k, v in states.items()},
            "start": table.start_states["start"], "end": table.end_states["start"],
            "terminals": {name: [regexp, *_starts(regexp)] for name, regexp in sorted(terminals.items())},
            "lexers": [lexers[key][1] for key in sorted(lexers, key=lambda k: lexers[k][0])],
            "lexer": {str(k): v for k, v in state_lexers.items()}, "root": root, "rules": rule_rows,
            "literals": {t.name: t.pattern.value for t in parser.terminals if t.pattern.type == "str"}}
    return json.dumps({"name": name(grammar, hashlib.sha256), "lalr": data},
                      separators=(",", ":")).encode()


def _rule_id(rules: dict, rule) -> int:
    return rules.setdefault(rule, len(rules))


def _lexer_id(lexers: dict, terminals: dict, lexer) -> int:
    """Lark's BasicLexer as data: built (its scanner) as it builds it when first used. Its
    terminals' expressions go into `terminals` (one expression per name, whichever lexer has it)."""
    if id(lexer) not in lexers:
        scanner = lexer.scanner
        unless = {}
        for terminal, callback in lexer.callback.items():
            words = callback.scanner.terminals
            assert all(w.pattern.type == "str" and not w.pattern.flags for w in words), words
            unless[terminal] = {w.pattern.value: w.name for w in words}
        assert not lexer.g_regex_flags and all(m.flags == 32 for m in scanner._mres)  # re.UNICODE only
        # Its expressions are its terminals', joined in this order (pybpf.lalr tries them in turn).
        order = [t.name for t in scanner.terminals]
        for t in scanner.terminals:
            assert terminals.setdefault(t.name, t.pattern.to_regexp()) == t.pattern.to_regexp(), t
        assert "|".join(m.pattern for m in scanner._mres) == "|".join(
            f"(?P<{name}>{terminals[name]})" for name in order)
        lexers[id(lexer)] = (len(lexers), {"terminals": order, "unless": unless,
                                           "ignore": sorted(lexer.ignore_types)})
    return lexers[id(lexer)][0]


def _starts(regexp: str) -> tuple[str, bool]:
    """(the ASCII characters a match of regexp can start with, whether it can start with another
    character), from its parsed form, erring on the side of more: a lexer tries only the
    terminals that the next character can start, so that it need not compile them all into one
    expression per state (~0.3 ms each, ~25 of them for a 100-line script)."""
    try:
        from re import _compiler as compiler, _constants as c, _parser as parse
    except ImportError:                                     # Python 3.10
        import sre_compile as compiler
        import sre_constants as c
        import sre_parse as parse

    pattern = parse.parse(regexp)
    ascii_chars = [chr(i) for i in range(128)]
    anything = ("".join(ascii_chars), True)

    def first(items) -> tuple[set, bool, bool]:
        """(ASCII characters, others, can be empty) of a sequence of items."""
        chars: set = set()
        others = False
        for op, av in items:
            if op in (c.AT, c.ASSERT, c.ASSERT_NOT):           # zero width: what follows decides
                continue
            if op in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):    # one character: ask re which
                one = compiler.compile(parse.SubPattern(pattern.state, [(op, av)]))
                chars |= {ch for ch in ascii_chars if one.fullmatch(ch)}
                return chars, others or not (op == c.LITERAL and av < 128), False
            if op == c.SUBPATTERN and not av[1]:                # a group that adds no flags
                sub = first(av[3])
            elif op == c.BRANCH:
                subs = [first(branch) for branch in av[1]]
                sub = (set().union(*(s[0] for s in subs)), any(s[1] for s in subs), any(s[2] for s in subs))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                inner = first(av[2])
                sub = (inner[0], inner[1], av[0] == 0 or inner[2])
            else:                                               # anything else: any character
                return set(anything[0]), True, False
            chars |= sub[0]
            others |= sub[1]
            if not sub[2]:
                return chars, others, False
        return chars, others, True

    chars, others, empty = first(pattern)
    return anything if empty else ("".join(sorted(chars)), others)


def shipped(wanted: str) -> bytes | None:
    """The tables installed with the package, when they are the ones named `wanted`."""
    try:
        with open(SHIPPED, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    return blob if blob[:200].find(f'"name":"{wanted}"'.encode()) >= 0 else None


def write_shipped(folder: str) -> None:
    """setup.py: the tables of the grammar beside it, into the built package's grammar folder."""
    with open(GRAMMAR) as f:
        blob = build(f.read())
    with open(os.path.join(folder, os.path.basename(SHIPPED)), "wb") as f:
        f.write(blob)
