"""A small SOQL parser and evaluator for the fake Salesforce: enough of the language revbot sends,
strict enough that a statement real Salesforce would refuse (or misread) fails here too."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<string>'(?:\\.|[^'\\])*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<op>!=|<=|>=|=|<|>|\(|\)|,)""",
    re.X,
)
ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc",
    "nulls", "first", "last", "limit", "offset", "true", "false", "null",
}  # fmt: skip


class SoqlError(ValueError):
    """A statement Salesforce would refuse: `code` is its errorCode (MALFORMED_QUERY, INVALID_FIELD)."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Text:
    """A string literal: its value, and its LIKE pattern (with \\% and \\_ kept literal)."""

    value: str
    like: re.Pattern[str]


@dataclass
class Query:
    """A parsed SELECT."""

    fields: list[str]
    sobject: str
    where: Any = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    literals: list[str] = field(default_factory=list)


def _unescape(raw: str) -> Text:
    body = raw[1:-1]
    value, pattern, i = [], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise SoqlError("invalid escape at the end of a string")
            nxt = body[i + 1]
            if nxt in ESCAPES:
                value.append(ESCAPES[nxt])
                pattern.append(re.escape(ESCAPES[nxt]))
            elif nxt in "%_":
                value.append(nxt)
                pattern.append(re.escape(nxt))
            else:
                raise SoqlError(f"Invalid string literal: unknown escape \\{nxt}")
            i += 2
            continue
        value.append(ch)
        pattern.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return Text("".join(value), re.compile("^" + "".join(pattern) + "$", re.S | re.I))


def tokenize(soql: str) -> list[tuple[str, str]]:
    """(kind, text) tokens; keywords lower-cased to kind `kw`."""
    tokens, pos = [], 0
    while pos < len(soql):
        match = TOKEN.match(soql, pos)
        if match is None:
            raise SoqlError(f"unexpected character {soql[pos]!r} at {pos}")
        pos = match.end()
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ws":
            continue
        if kind == "ident" and text.lower() in KEYWORDS:
            tokens.append(("kw", text.lower()))
        else:
            tokens.append((kind, text))
    return tokens


class _Parser:
    def __init__(self, soql: str) -> None:
        self.tokens = tokenize(soql)
        self.pos = 0
        self.literals: list[str] = []

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, kind: str, text: str | None = None) -> str:
        got = self.peek()
        if got[0] != kind or (text is not None and got[1] != text):
            raise SoqlError(f"unexpected token: {got[1] or 'end of statement'!r}")
        self.pos += 1
        return got[1]

    def accept(self, kind: str, text: str | None = None) -> bool:
        got = self.peek()
        if got[0] == kind and (text is None or got[1] == text):
            self.pos += 1
            return True
        return False

    def parse(self) -> Query:
        self.take("kw", "select")
        fields = [self.take("ident")]
        while self.accept("op", ","):
            fields.append(self.take("ident"))
        self.take("kw", "from")
        query = Query(fields=fields, sobject=self.take("ident"))
        if self.accept("kw", "where"):
            query.where = self.disjunction()
        if self.accept("kw", "order"):
            self.take("kw", "by")
            while True:
                name = self.take("ident")
                desc = self.accept("kw", "desc") or (self.accept("kw", "asc") and False)
                nulls_last = desc
                if self.accept("kw", "nulls"):
                    nulls_last = self.accept("kw", "last") or not self.take("kw", "first")
                query.order.append((name, desc, nulls_last))
                if not self.accept("op", ","):
                    break
        if self.accept("kw", "limit"):
            query.limit = int(self.take("number"))
        if self.accept("kw", "offset"):
            query.offset = int(self.take("number"))
            if query.offset > 2000:
                raise SoqlError("Maximum SOQL offset allowed is 2000", "NUMBER_OUTSIDE_VALID_RANGE")
        if self.peek()[0] != "end":
            raise SoqlError(f"unexpected token: {self.peek()[1]!r}")
        query.literals = self.literals
        return query

    def disjunction(self) -> Any:
        parts = [self.conjunction()]
        while self.accept("kw", "or"):
            parts.append(self.conjunction())
        return ("or", parts) if len(parts) > 1 else parts[0]

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.accept("kw", "and"):
            parts.append(self.negation())
        return ("and", parts) if len(parts) > 1 else parts[0]

    def negation(self) -> Any:
        if self.accept("kw", "not"):
            return ("not", self.negation())
        if self.accept("op", "("):
            inner = self.disjunction()
            self.take("op", ")")
            return inner
        name = self.take("ident")
        if self.accept("kw", "like"):
            kind, text = self.peek()
            if kind != "string":
                raise SoqlError("LIKE needs a string literal")
            self.pos += 1
            self.literals.append(text)
            return ("like", name, _unescape(text))
        negate = self.accept("kw", "not")
        if self.accept("kw", "in"):
            self.take("op", "(")
            values = [self.value()]
            while self.accept("op", ","):
                values.append(self.value())
            self.take("op", ")")
            return ("in", name, values, negate)
        if negate:
            raise SoqlError("NOT must be followed by IN here")
        op = self.take("op")
        if op not in ("=", "!=", "<", ">", "<=", ">="):
            raise SoqlError(f"unexpected token: {op!r}")
        return ("cmp", name, op, self.value())

    def value(self) -> Any:
        kind, text = self.peek()
        self.pos += 1
        if kind == "string":
            self.literals.append(text)
            return _unescape(text).value
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "datetime":
            return parse_datetime(text)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "kw" and text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        raise SoqlError(f"unexpected token: {text or 'end of statement'!r}")


def parse(soql: str) -> Query:
    """Parse one SELECT statement; SoqlError when Salesforce would refuse it."""
    return _Parser(soql).parse()


def parse_datetime(text: str) -> datetime:
    """A datetime literal or stored value (`...Z`, `...+00:00`, `...+0000`)."""
    value = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):
        value = f"{value[:-2]}:{value[-2:]}"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _comparable(stored: Any, literal: Any) -> tuple[Any, Any]:
    if stored is None or literal is None:
        return stored, literal
    if isinstance(literal, datetime):
        return parse_datetime(stored), literal
    if isinstance(literal, date):
        return date.fromisoformat(str(stored)[:10]), literal
    if isinstance(literal, str) and isinstance(stored, str):
        return stored.casefold(), literal.casefold()
    return stored, literal


def matches(node: Any, get: Callable[[str], Any]) -> bool:
    """Whether a record (read through `get(field path)`) satisfies a WHERE tree."""
    if node is None:
        return True
    kind = node[0]
    if kind == "and":
        return all(matches(n, get) for n in node[1])
    if kind == "or":
        return any(matches(n, get) for n in node[1])
    if kind == "not":
        return not matches(node[1], get)
    if kind == "like":
        value = get(node[1])
        return value is not None and bool(node[2].like.match(str(value)))
    if kind == "in":
        stored = get(node[1])
        found = any(_equal(stored, v) for v in node[2])
        return found != node[3]
    _, name, op, literal = node
    stored, lit = _comparable(get(name), literal)
    if op == "=":
        return stored == lit
    if op == "!=":
        return stored != lit
    if stored is None or lit is None:
        return False
    return {"<": stored < lit, ">": stored > lit, "<=": stored <= lit, ">=": stored >= lit}[op]


def _equal(stored: Any, literal: Any) -> bool:
    a, b = _comparable(stored, literal)
    return bool(a == b)


def where_fields(node: Any) -> list[str]:
    """Every field path a WHERE tree reads."""
    if node is None:
        return []
    if node[0] in ("and", "or"):
        return [f for n in node[1] for f in where_fields(n)]
    if node[0] == "not":
        return where_fields(node[1])
    return [node[1]]
