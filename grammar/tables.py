"""The parser's LALR tables: built by Lark from pbt.lark, kept as JSON (never Lark's own cache=, a
pickle: loading one runs code).

    blob = build(grammar)                   # ~100 ms: Lark's LALR analysis
    parser = load(blob)                     # ~10 ms
    shipped(name(lark.__version__, grammar))    # the tables an installed package carries, or None

pybpf.parser keeps built tables in the trusted cache (pybpf.diskcache). A pip-installed pybpf also
carries them beside the grammar (SHIPPED, written by setup.py's build step with this module), so
even a start with an empty cache loads them instead of building them. They are used only when
their name matches: the same grammar, Lark version and options. This module imports no other pybpf
module: setup.py loads it from its file, before pybpf is installed.
"""

from __future__ import annotations

import hashlib
import json
import os

OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)
GRAMMAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pbt.lark")
SHIPPED = os.path.join(os.path.dirname(GRAMMAR), "pbt-tables.json")


def name(lark_version: str, grammar: str) -> str:
    """What the tables are for: the grammar, Lark's version and the options, as a file name."""
    return hashlib.sha256(f"{lark_version}|{OPTIONS}|{grammar}".encode()).hexdigest() + ".json"


def build(grammar: str) -> bytes:
    """Lark's own serialised form of the parser (what its pickle holds), as JSON, with its name."""
    import lark
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = lark.Lark(grammar, **OPTIONS).memo_serialize([TerminalDef, Rule])
    return json.dumps({"name": name(lark.__version__, grammar), "data": data, "memo": memo},
                      separators=(",", ":")).encode()


def load(blob: bytes):
    """The parser the tables describe. JSON has no integer keys: the parse states, token numbers
    and memo ids are turned back into ints."""
    import lark

    tables = json.loads(blob)
    lalr = tables["data"]["parser"]["parser"]
    lalr["tokens"] = {int(k): v for k, v in lalr["tokens"].items()}
    lalr["states"] = {int(state): {int(token): action for token, action in actions.items()}
                      for state, actions in lalr["states"].items()}
    memo = {int(k): v for k, v in tables["memo"].items()}
    return lark.Lark._load_from_dict(tables["data"], memo)


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
