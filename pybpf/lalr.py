"""An LALR(1) parser with a contextual lexer, run from the tables that pybpf.grammar.tables builds
with Lark: it parses as Lark's parser does (the same tokens, children and positions) without
importing Lark (~30 ms with the typing, logging and dataclasses it imports) or rebuilding Lark's
objects from their serialised form (~15 ms).

    parser = Parser(json.loads(blob)["lalr"])
    script = parser.parse(source, actions)     # actions.RULE(meta, children) as each rule reduces

There is no parse tree: a rule's value is what its action returns, made when the rule reduces
(what Lark's Transformer would make from the finished tree, child by child). The actions object
has one method per rule name or alias of the grammar (tests/pybpf/test_lalr.py checks it).
Lark's rules for the values an action receives:
- tokens written as literals in a rule are left out (all are kept in a `!rule`), `[x]` gives None
  when x is absent, a `_rule`'s children stand in its parent's place;
- a `?rule` with one child is that child;
- a value's position (Meta) runs from the start of its first child to the end of its last one, the
  left-out tokens included; a `?rule`'s child keeps its own position, and its parent starts and
  ends where the `?rule` did (`(a + b) * c` starts at the parenthesis).
"""

from __future__ import annotations

import re


class ParseError(Exception):
    """The source is not in the language."""


class UnexpectedToken(ParseError):
    def __init__(self, token: Token, expected: set[str]):
        super().__init__(f"unexpected {token.type} {str(token)!r} at {token.line}:{token.column}")
        self.token, self.expected = token, expected


class UnexpectedCharacters(ParseError):
    def __init__(self, pos_in_stream: int, line: int, column: int):
        super().__init__(f"no token at {line}:{column}")
        self.pos_in_stream, self.line, self.column = pos_in_stream, line, column


class TooDeep(ParseError):
    """The tree would be more than `limit` levels deep; meta is the first subtree too deep."""

    def __init__(self, meta: Meta):
        super().__init__(f"too deep at {meta.line}:{meta.column}")
        self.meta = meta


class Token(str):
    """A token's text, its terminal's name (`type`) and where it is (1-based lines and columns,
    the end one past its last character)."""

    def __new__(cls, type_: str, value: str, start_pos: int, line: int, column: int,
                end_line: int, end_column: int, end_pos: int):
        self = super().__new__(cls, value)
        self.type, self.start_pos, self.line, self.column = type_, start_pos, line, column
        self.end_line, self.end_column, self.end_pos = end_line, end_column, end_pos
        return self

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {str(self)!r})"


class Meta:
    """Where a rule's value is in the source; empty when none of its children has a position."""

    __slots__ = ("empty", "line", "column", "start_pos", "end_line", "end_column", "end_pos")

    def __init__(self, place: tuple | None):
        self.empty = place is None
        if place is not None:
            (self.line, self.column, self.start_pos,
             self.end_line, self.end_column, self.end_pos) = place[:6]


class _Inlined(list):
    """A `_rule`'s children (and their places), until its parent takes them in its place."""

    places: list


class _Terminal:
    """A terminal's regular expression, compiled when first tried, and the characters a match of
    it can start with (ASCII ones; `others`: whether any other character)."""

    __slots__ = ("name", "regexp", "starts", "others", "compiled")

    def __init__(self, name: str, spec: list):
        self.name = name
        self.regexp, self.starts, self.others = spec
        self.compiled: re.Pattern | None = None

    def can_start(self, char: str) -> bool:
        return char in self.starts if char < "\x80" else self.others


class _Lexer:
    """One state's terminals, in the order Lark's lexer tries them. Lark joins their expressions
    into one per state (one named group each: the first that matches wins) and compiles it when
    the state is first met; here each terminal's own expression is compiled once, shared by every
    state, and a state tries only those that the next character can start (the same first match:
    the ones skipped cannot match there)."""

    __slots__ = ("terminals", "unless", "ignore", "by_char")

    def __init__(self, spec: dict, terminals: dict[str, _Terminal]):
        self.terminals = [terminals[name] for name in spec["terminals"]]
        self.unless = spec["unless"]
        self.ignore = frozenset(spec["ignore"])
        self.by_char: dict[str, list[_Terminal]] = {}

    def match(self, text: str, pos: int) -> tuple[str, str] | None:
        """(text, terminal) of the token at pos, or None; a word its terminal's match would take
        for a keyword becomes that keyword."""
        char = text[pos]
        candidates = self.by_char.get(char)
        if candidates is None:
            candidates = self.by_char[char] = [t for t in self.terminals if t.can_start(char)]
        for terminal in candidates:
            if terminal.compiled is None:
                terminal.compiled = re.compile(terminal.regexp)
            m = terminal.compiled.match(text, pos)
            if m:
                value = m.group(0)
                words = self.unless.get(terminal.name)
                return value, (words.get(value, terminal.name) if words else terminal.name)
        return None


# A value on the parse stack: (the value, its place, its height in levels). A place is the
# value's own (line, column, start_pos, end_line, end_column, end_pos), then the same six of
# the text its rule covered (they differ for a `?rule`'s single child).
_SHIFT = 0


class Parser:
    def __init__(self, tables: dict):
        self.states = {int(k): v for k, v in tables["states"].items()}
        self.start, self.end = tables["start"], tables["end"]
        terminals = {name: _Terminal(name, spec) for name, spec in tables["terminals"].items()}
        self.lexers = [_Lexer(spec, terminals) for spec in tables["lexers"]]
        self.state_lexer = {int(k): self.lexers[v] for k, v in tables["lexer"].items()}
        self.root = self.lexers[tables["root"]]
        # [origin, action name ('' for a `_rule`), length, a single child is the value, kept
        # children ([index, inline it, Nones before] or None: all), Nones after]
        self.rules = tables["rules"]
        self.literals: dict[str, str] = tables["literals"]     # terminal -> its fixed text

    def parse(self, text: str, actions, limit: int | None = None, on_token=None):
        """The start rule's value. Raises UnexpectedToken, UnexpectedCharacters, and TooDeep
        when a value would be more than `limit` levels deep (Lark's tree: `_rule`s and single
        children of `?rule`s are no level). on_token(token), when given, sees each token before
        it is parsed and may change its type (a C parser's typedef names)."""
        states, end_state = self.states, self.end
        found: dict[int, object] = {}
        state_stack, value_stack = [self.start], []
        token = None
        for token in self._tokens(text, state_stack):
            if on_token is not None:
                on_token(token)
            while True:
                try:
                    kind, arg = states[state_stack[-1]][token.type]
                except KeyError:
                    raise UnexpectedToken(token, _expected(states[state_stack[-1]])) from None
                if kind == _SHIFT:
                    state_stack.append(arg)
                    place = (token.line, token.column, token.start_pos,
                             token.end_line, token.end_column, token.end_pos)
                    value_stack.append((token, place + place, 0))
                    break
                self._reduce(arg, state_stack, value_stack, actions, found, limit)
        if token is None:
            end = Token("$END", "", 0, 1, 1, 1, 1, 0)
        else:
            end = Token("$END", "", token.start_pos, token.line, token.column, token.end_line,
                        token.end_column, token.end_pos)
        while True:
            try:
                kind, arg = states[state_stack[-1]]["$END"]
            except KeyError:
                raise UnexpectedToken(end, _expected(states[state_stack[-1]])) from None
            self._reduce(arg, state_stack, value_stack, actions, found, limit)
            if state_stack[-1] == end_state:
                return value_stack[-1][0]

    def _reduce(self, number: int, state_stack: list, value_stack: list, actions, found: dict,
                limit: int | None) -> None:
        origin, name, size, single, keep, after = self.rules[number]
        if size == 1 and single and keep is None:
            # A `?rule` of one child (most reductions: an operand climbing the precedence
            # levels): the child is the value, with its place and height, so only the state moves.
            state_stack[-1] = self.states[state_stack[-2]][origin][1]
            return
        if size:
            items = value_stack[-size:]
            del state_stack[-size:]
            del value_stack[-size:]
        else:
            items = []
        first = next((item[1] for item in items if item[1] is not None), None)
        last = next((item[1] for item in reversed(items) if item[1] is not None), None)
        if keep is None:
            children, places = [item[0] for item in items], [item[1] for item in items]
            height = max((item[2] for item in items), default=0)
        else:
            children, places, height = [], [], 0
            for index, inline, nones in keep:
                if nones:
                    children += [None] * nones
                    places += [None] * nones
                value, place, levels = items[index]
                if inline:
                    children += value
                    places += value.places
                else:
                    children.append(value)
                    places.append(place)
                height = max(height, levels)
            if after:
                children += [None] * after
                places += [None] * after
        if single and len(children) == 1:
            place, child = places[0], children[0]
            if first is not None and child is not None and not isinstance(child, Token):
                own = place[:6] if place is not None else first[6:9] + last[9:]
                place = own + first[6:9] + last[9:]
            value_stack.append((children[0], place, height))
        else:
            place = None if first is None else first[6:9] + last[9:] + first[6:9] + last[9:]
            if not name:
                value = _Inlined(children)
                value.places = places
            else:
                height += 1
                meta = Meta(place)
                if limit is not None and height > limit:
                    raise TooDeep(meta)
                action = found.get(number)
                if action is None:
                    action = found[number] = getattr(actions, name)
                value = action(meta, children)
            value_stack.append((value, place, height))
        state_stack.append(self.states[state_stack[-1]][origin][1])

    def _tokens(self, text: str, state_stack: list):
        """The tokens of text, each lexed by the lexer of the parse state it is read in."""
        pos, line, line_start, length = 0, 1, 0, len(text)
        while pos < length:
            lexer = self.state_lexer[state_stack[-1]]
            found = lexer.match(text, pos)
            if found is None:
                # A token of the language that this state does not take is an unexpected token
                # (as Lark's contextual lexer reports it), else an unexpected character.
                column = pos - line_start + 1
                other = self.root.match(text, pos)
                if other is None:
                    raise UnexpectedCharacters(pos, line, column)
                value, terminal = other
                newline = value.rfind("\n")
                token = Token(terminal, value, pos, line, column, line + value.count("\n"),
                              (len(value) - newline if newline >= 0 else column + len(value)),
                              pos + len(value))
                raise UnexpectedToken(token, _expected(self.states[state_stack[-1]]))
            value, terminal = found
            start, start_line, column = pos, line, pos - line_start + 1
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if terminal not in lexer.ignore:
                yield Token(terminal, value, start, start_line, column, line, pos - line_start + 1, pos)


def _expected(actions: dict) -> set[str]:
    return {symbol for symbol in actions if symbol.isupper()}
