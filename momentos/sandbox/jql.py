"""A small JQL parser for the Jira sandbox: tokenizer + recursive descent → a tiny AST.

Only the subset momentos and its tests need is understood; anything else is a ``JqlError`` that
the sandbox answers with HTTP 400 and Jira's ``{"errorMessages": [...], "errors": {}}`` body,
as the real search endpoints do for a query they cannot parse.

Grammar (keywords case-insensitive)::

    query   := [or_expr] [ORDER BY sort ("," sort)*]
    or_expr := and_expr (OR and_expr)*
    and_expr:= not_expr (AND not_expr)*
    not_expr:= NOT not_expr | "(" or_expr ")" | clause
    clause  := field op value | field [NOT] IN "(" value ("," value)* ")"
             | field IS [NOT] (EMPTY | NULL)
    value   := word | "quoted" | 'quoted' | function "(" [value ("," value)*] ")"
    sort    := field [ASC | DESC]

Evaluation is the sandbox's job (it knows the issues); this module only builds the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["And", "Clause", "JqlError", "Not", "Or", "Query", "Value", "parse"]


class JqlError(ValueError):
    """A JQL query the sandbox cannot parse or evaluate; the message is Jira-shaped."""


@dataclass(frozen=True)
class Value:
    """A clause operand: ``kind`` is "word", "string", "func" or "list"."""

    kind: str
    text: str = ""
    items: tuple[Value, ...] = ()


@dataclass(frozen=True)
class Clause:
    field: str  # as written, lower-cased
    op: str  # "=", "!=", ">", ">=", "<", "<=", "~", "!~", "in", "not in", "is", "is not"
    value: Value
    position: int


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Clause | And | Or | Not


@dataclass
class Query:
    where: Node | None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    |(?P<op>!=|>=|<=|!~|=|>|<|~)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<word>[^\s()",'=!<>~]+)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
_OPERATORS_HELP = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
    "'IS' and 'IS NOT'."
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # lp rp comma op string word end
    text: str
    pos: int

    @property
    def keyword(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - every character matches some alternative
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        kind = match.lastgroup or ""
        if kind != "ws":
            raw = match.group(0)
            if kind == "string":
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            tokens.append(_Tok(kind, raw, match.start() + 1))
        pos = match.end()
    tokens.append(_Tok("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.index]

    def take(self) -> _Tok:
        tok = self.tokens[self.index]
        self.index += 1
        return tok

    def fail(self, expecting: str) -> JqlError:
        tok = self.tok
        got = "the end of the query" if tok.kind == "end" else f"'{tok.text}'"
        return JqlError(
            f"Error in the JQL Query: Expecting {expecting} but got {got}. "
            f"(line 1, character {tok.pos})"
        )

    # query := [or_expr] [ORDER BY ...]
    def query(self) -> Query:
        where: Node | None = None
        if self.tok.kind != "end" and self.tok.keyword != "order":
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.tok.keyword == "order":
            self.take()
            if self.tok.keyword != "by":
                raise self.fail("'by'")
            self.take()
            while True:
                if self.tok.kind not in ("word", "string"):
                    raise self.fail("a field name")
                name = self.take().text.lower()
                descending = False
                if self.tok.keyword in ("asc", "desc"):
                    descending = self.take().keyword == "desc"
                order.append((name, descending))
                if self.tok.kind != "comma":
                    break
                self.take()
        if self.tok.kind != "end":
            raise self.fail("either 'OR' or 'AND'" if where is not None else "a field name")
        return Query(where, order)

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.tok.keyword == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.tok.keyword == "and":
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_expr(self) -> Node:
        if self.tok.keyword == "not":
            self.take()
            return Not(self.not_expr())
        if self.tok.kind == "lp":
            self.take()
            node = self.or_expr()
            if self.tok.kind != "rp":
                raise self.fail("')'")
            self.take()
            return node
        return self.clause()

    def clause(self) -> Clause:
        tok = self.tok
        if tok.kind not in ("word", "string") or (tok.kind == "word" and tok.keyword in _KEYWORDS):
            raise self.fail("a field name")
        self.take()
        name = tok.text.lower()
        op_tok = self.tok
        if op_tok.kind == "op":
            self.take()
            return Clause(name, op_tok.text, self.value(), tok.pos)
        keyword = op_tok.keyword
        if keyword == "in":
            self.take()
            return Clause(name, "in", self.value_list(), tok.pos)
        if keyword == "not":
            self.take()
            if self.tok.keyword != "in":
                raise self.fail("'IN'")
            self.take()
            return Clause(name, "not in", self.value_list(), tok.pos)
        if keyword == "is":
            self.take()
            op = "is"
            if self.tok.keyword == "not":
                self.take()
                op = "is not"
            if self.tok.keyword not in ("empty", "null"):
                raise self.fail("'EMPTY' or 'NULL'")
            self.take()
            return Clause(name, op, Value("word", "empty"), tok.pos)
        raise JqlError(
            f"Error in the JQL Query: Expecting operator but got "
            f"{'the end of the query' if op_tok.kind == 'end' else repr(op_tok.text)}. "
            f"{_OPERATORS_HELP} (line 1, character {op_tok.pos})"
        )

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "string":
            self.take()
            return Value("string", tok.text)
        if tok.kind == "word" and tok.keyword not in ("and", "or", "order", "not", "in", "is"):
            self.take()
            if self.tok.kind == "lp":  # function call, e.g. now() or currentUser()
                self.take()
                args: list[Value] = []
                while self.tok.kind != "rp":
                    args.append(self.value())
                    if self.tok.kind == "comma":
                        self.take()
                    elif self.tok.kind != "rp":
                        raise self.fail("')'")
                self.take()
                return Value("func", tok.text.lower(), tuple(args))
            return Value("word", tok.text)
        raise self.fail("either a value, 'EMPTY' or a function")

    def value_list(self) -> Value:
        if self.tok.kind != "lp":
            raise self.fail("'('")
        self.take()
        items = [self.value()]
        while self.tok.kind == "comma":
            self.take()
            items.append(self.value())
        if self.tok.kind != "rp":
            raise self.fail("')'")
        self.take()
        return Value("list", "", tuple(items))


def parse(text: str) -> Query:
    """Parse a JQL string; raise ``JqlError`` with a Jira-style message when it is invalid."""
    return _Parser(text or "").query()
