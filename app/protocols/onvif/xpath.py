"""The ONVIF search XPath dialect (spec §3) and WS-Topics topic expressions, parsed once, sans-IO.

`compile_filter(text)` parses a `tt:XPathExpression` (RecordingInformationFilter, the
ItemFilter message-content dialect) into an evaluator over `Node` trees; callers build those
trees from their own data (RecordingInformation, a notification message). Nothing here hands
a client string to a general XPath engine, so there is no injection and no namespace
gymnastics: element names match by local name (XP-03).

`compile_topic_filter(text, dialect, namespaces)` parses a TopicExpression of the Concrete,
ConcreteSet or Simple dialects (`|` alternatives, `//.` subtree, PF-22).

Every error is an `XPathError` (a ProtocolError); the SOAP edge maps it to
ter:InvalidArgVal / ter:InvalidFilterFault.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from app.core.errors import ProtocolError
from app.core.time import parse_iso

#: Longest filter expression accepted, in characters.
MAX_EXPRESSION_CHARS = 4096
#: Deepest nesting of parentheses, not() and predicates.
MAX_NESTING = 32
#: Most tokens in one expression.
MAX_TOKENS = 1024
#: Most location steps in one path.
MAX_STEPS = 16
#: Most `|` alternatives in one topic expression.
MAX_TOPIC_ALTERNATIVES = 64

TOPIC_CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
TOPIC_CONCRETE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
TOPIC_SIMPLE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
MESSAGE_ITEM_FILTER = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"


class XPathError(ProtocolError):
    """A filter or topic expression outside the supported dialect (names the offending part)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """An element of the document a filter is evaluated on: local name, attributes, text."""

    name: str
    text: str = ""
    attrs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    children: Sequence[Node] = ()

    def string_value(self) -> str:
        return self.text + "".join(c.string_value() for c in self.children)

    def descendants_or_self(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.descendants_or_self()


# -------------------------------------------------------------------- tokens

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<str>"[^"]*"|'[^']*'|“[^”]*”)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>//|!=|<=|>=|[=<>()\[\]/@,.*])
      | (?P<name>[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)
    )""",
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # str | num | op | name | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    if len(text) > MAX_EXPRESSION_CHARS:
        raise XPathError(
            f"filter expression of {len(text)} characters exceeds {MAX_EXPRESSION_CHARS}"
        )
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise XPathError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos}")
        kind = m.lastgroup
        assert kind is not None
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1]
        toks.append(_Tok(kind, value, m.start(kind)))
        if len(toks) > MAX_TOKENS:
            raise XPathError(f"filter expression has more than {MAX_TOKENS} tokens")
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# -------------------------------------------------------------------- evaluation helpers

T = TypeVar("T", float, int, str)
Pred = Callable[[Node], bool]
Expr = Callable[[Node], bool]


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _as_time(value: str) -> int | None:
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _compare(left: str, op: str, right: str) -> bool:
    left, right = left.strip(), right.strip()
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    ln, rn = _as_number(left), _as_number(right)
    if ln is not None and rn is not None:
        return _order(ln, op, rn)
    lt, rt = _as_time(left), _as_time(right)
    if lt is not None and rt is not None:
        return _order(lt, op, rt)
    return _order(left, op, right)


def _order(left: T, op: str, right: T) -> bool:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


@dataclasses.dataclass(frozen=True, slots=True)
class _Path:
    #: True: the first step matches at any depth (`//`); False: a child of the root (`/`).
    deep: bool
    steps: tuple[str, ...]  # local names, "*" or "."

    def select(self, root: Node) -> Iterator[Node]:
        first, rest = self.steps[0], self.steps[1:]
        starts: Iterator[Node]
        if self.deep:
            starts = (n for n in root.descendants_or_self() if _step_ok(n, first))
        elif first == ".":
            starts = iter((root,))
        else:
            # `/A` names the document element itself, or (leniently) one of its children.
            starts = (n for n in (root, *root.children) if _step_ok(n, first))
        nodes = list(starts)
        for step in rest:
            if step == ".":
                continue
            nodes = [c for n in nodes for c in n.children if _step_ok(c, step)]
        yield from nodes


def _step_ok(node: Node, step: str) -> bool:
    return step in ("*", ".") or node.name == step


# -------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, what: str) -> XPathError:
        tok = self.tok
        got = "the end" if tok.kind == "end" else repr(tok.text)
        return XPathError(f"{what} expected at {tok.pos}, got {got} in filter {self.text[:80]!r}")

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.fail(repr(text) if text else kind)
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (text is None or tok.text == text)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise XPathError(f"filter nests deeper than {MAX_NESTING} levels")

    # expr := and ('or' and)*
    def expr(self) -> Expr:
        left = self.and_expr()
        while self.at("name", "or"):
            self.i += 1
            right = self.and_expr()
            left = _or(left, right)
        return left

    def and_expr(self) -> Expr:
        left = self.unary()
        while self.at("name", "and"):
            self.i += 1
            right = self.unary()
            left = _and(left, right)
        return left

    def unary(self) -> Expr:
        self.nest()
        try:
            if self.at("op", "("):
                self.i += 1
                inner = self.expr()
                self.take("op", ")")
                return inner
            if self.at("name", "not"):
                self.i += 1
                self.take("op", "(")
                inner = self.expr()
                self.take("op", ")")
                return _not(inner)
            if self.at("name", "boolean"):
                self.i += 1
                self.take("op", "(")
                path, pred = self.path(allow_pred=True)
                self.take("op", ")")
                return _exists(path, pred)
            if self.at("name", "contains"):
                self.i += 1
                self.take("op", "(")
                path, _ = self.path(allow_pred=False)
                self.take("op", ",")
                needle = self.take("str").text
                self.take("op", ")")
                return _contains(path, needle)
            raise self.fail("boolean(…), contains(…), not(…) or '('")
        finally:
            self.depth -= 1

    def path(self, *, allow_pred: bool) -> tuple[_Path, Pred | None]:
        if self.at("op", "//"):
            deep = True
        elif self.at("op", "/"):
            deep = False
        else:
            raise self.fail("a path starting with '/' or '//'")
        self.i += 1
        steps = [self.step()]
        while self.at("op", "/"):
            self.i += 1
            steps.append(self.step())
            if len(steps) > MAX_STEPS:
                raise XPathError(f"path has more than {MAX_STEPS} steps")
        pred: Pred | None = None
        if allow_pred and self.at("op", "["):
            self.i += 1
            self.nest()
            pred = self.pred_or()
            self.depth -= 1
            self.take("op", "]")
        return _Path(deep, tuple(steps)), pred

    def step(self) -> str:
        if self.at("op", ".") or self.at("op", "*"):
            return self.take("op").text
        return _local(self.take("name").text)

    def pred_or(self) -> Pred:
        left = self.pred_and()
        while self.at("name", "or"):
            self.i += 1
            right = self.pred_and()
            left = _or(left, right)
        return left

    def pred_and(self) -> Pred:
        left = self.pred_unary()
        while self.at("name", "and"):
            self.i += 1
            right = self.pred_unary()
            left = _and(left, right)
        return left

    def pred_unary(self) -> Pred:
        self.nest()
        try:
            if self.at("op", "("):
                self.i += 1
                inner = self.pred_or()
                self.take("op", ")")
                return inner
            if self.at("name", "not") and self.toks[self.i + 1].text == "(":
                self.i += 2
                inner = self.pred_or()
                self.take("op", ")")
                return _not(inner)
            attr = False
            if self.at("op", "@"):
                self.i += 1
                attr = True
            name = _local(self.take("name").text)
            op = self.tok.text if self.at("op") else ""
            if op not in ("=", "!=", "<", "<=", ">", ">="):
                raise self.fail("a comparison operator")
            self.i += 1
            if not (self.at("str") or self.at("num")):
                raise self.fail("a quoted string")
            value = self.tok.text
            self.i += 1
            return _attr_test(name, op, value) if attr else _child_test(name, op, value)
        finally:
            self.depth -= 1


def _or(a: Pred, b: Pred) -> Pred:
    return lambda n: a(n) or b(n)


def _and(a: Pred, b: Pred) -> Pred:
    return lambda n: a(n) and b(n)


def _not(a: Pred) -> Pred:
    return lambda n: not a(n)


def _attr_test(name: str, op: str, value: str) -> Pred:
    def test(node: Node) -> bool:
        got = node.attrs.get(name)
        return got is not None and _compare(got, op, value)

    return test


def _child_test(name: str, op: str, value: str) -> Pred:
    def test(node: Node) -> bool:
        if name in node.attrs and _compare(node.attrs[name], op, value):
            return True
        return any(c.name == name and _compare(c.string_value(), op, value) for c in node.children)

    return test


def _exists(path: _Path, pred: Pred | None) -> Expr:
    return lambda root: any(pred is None or pred(n) for n in path.select(root))


def _contains(path: _Path, needle: str) -> Expr:
    return lambda root: any(needle in n.string_value() for n in path.select(root))


@dataclasses.dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter; call `matches(document)` as often as needed."""

    text: str
    _expr: Expr

    def matches(self, document: Node) -> bool:
        return self._expr(document)


def compile_filter(text: str) -> Filter:
    """Parse a §3 XPath filter (also the ItemFilter message-content dialect)."""
    if not isinstance(text, str):
        raise XPathError(f"filter must be a string, got {type(text).__name__}")
    parser = _Parser(text)
    if parser.at("end"):
        raise XPathError("empty filter expression")
    expr = parser.expr()
    if not parser.at("end"):
        raise parser.fail("'and', 'or' or the end")
    return Filter(text, expr)


# -------------------------------------------------------------------- topic expressions

_TOPIC_STEP_RE = re.compile(r"^(?:([A-Za-z_][\w.\-]*):)?([A-Za-z_][\w.\-]*)$")


@dataclasses.dataclass(frozen=True, slots=True)
class _TopicAlt:
    namespace: str | None
    path: tuple[str, ...]
    subtree: bool


@dataclasses.dataclass(frozen=True, slots=True)
class TopicFilter:
    """A parsed TopicExpression; `matches(namespace, path)` tests one concrete topic."""

    text: str
    alternatives: tuple[_TopicAlt, ...]

    def matches(self, namespace: str, path: Sequence[str]) -> bool:
        topic = tuple(path)
        for alt in self.alternatives:
            if alt.namespace != namespace:
                continue
            if topic == alt.path or (alt.subtree and topic[: len(alt.path)] == alt.path):
                return True
        return False


def compile_topic_filter(text: str, dialect: str, namespaces: Mapping[str, str]) -> TopicFilter:
    """Parse a TopicExpression; prefixes resolve through the element's in-scope `namespaces`
    (prefix → URI, '' for the default namespace)."""
    if dialect not in (TOPIC_CONCRETE_SET, TOPIC_CONCRETE, TOPIC_SIMPLE):
        raise XPathError(f"unsupported topic expression dialect {dialect!r}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise XPathError(f"topic expression of {len(text)} characters exceeds the limit")
    parts = text.split("|")
    if dialect != TOPIC_CONCRETE_SET and len(parts) > 1:
        raise XPathError(f"'|' is only allowed in the ConcreteSet dialect: {text[:80]!r}")
    if len(parts) > MAX_TOPIC_ALTERNATIVES:
        raise XPathError(f"topic expression has more than {MAX_TOPIC_ALTERNATIVES} alternatives")
    alts = []
    for raw in parts:
        part = "".join(raw.split())  # whitespace around and inside the text is not meaningful
        subtree = part.endswith("//.")
        if subtree:
            if dialect != TOPIC_CONCRETE_SET:
                raise XPathError(f"'//.' is only allowed in the ConcreteSet dialect: {raw!r}")
            part = part[:-3]
        steps = part.split("/")
        if not part or len(steps) > MAX_STEPS:
            raise XPathError(f"bad topic path {raw.strip()[:80]!r}")
        if dialect == TOPIC_SIMPLE and len(steps) > 1:
            raise XPathError(f"the Simple dialect names a root topic only: {raw.strip()!r}")
        namespace: str | None = None
        names = []
        for k, step in enumerate(steps):
            m = _TOPIC_STEP_RE.match(step)
            if m is None:
                raise XPathError(f"bad topic step {step[:40]!r} in {raw.strip()[:80]!r}")
            prefix, name = m.group(1), m.group(2)
            if k == 0:
                key = prefix or ""
                if key not in namespaces and prefix:
                    raise XPathError(f"undeclared namespace prefix {prefix!r} in topic {raw!r}")
                namespace = namespaces.get(key)
            names.append(name)
        alts.append(_TopicAlt(namespace, tuple(names), subtree))
    return TopicFilter(text, tuple(alts))
