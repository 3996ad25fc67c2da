"""Parser for Qlib's expression language, producing a small syntax tree.

Qlib evaluates its expression strings with Python's ``eval`` after a regex rewrite, so the grammar
is Python's: ``**`` binds tighter than unary minus, ``* /`` tighter than ``+ -``, then ``&``, then
``|``, and comparisons bind loosest of all (``$a > 1 & $b`` means ``$a > (1 & $b)``). This parser
keeps that precedence but never evaluates the string.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

FIELDS = ("open", "high", "low", "close", "volume", "vwap", "factor", "amount")


class ExpressionError(ValueError):
    """A Qlib expression that cannot be compiled; ``position`` is the 0-based offset in ``text``."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        self.reason = message
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")


@dataclass(frozen=True)
class Field:
    name: str
    pos: int

    def key(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True)
class Const:
    value: int | float
    pos: int

    def key(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Call:
    """An operator application; binary operators are spelled as Qlib's classes (Add, Gt, ...)."""

    op: str
    args: tuple["Node", ...]
    pos: int

    def key(self) -> str:
        return f"{self.op}({','.join(a.key() for a in self.args)})"


Node = Field | Const | Call

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<field>\$\w+)"
    r"|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>\*\*|>=|<=|==|!=|[-+*/()<>&|,]))"
)

_BINARY = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "**": "Power", "&": "And", "|": "Or"}
_COMPARE = {">": "Gt", ">=": "Ge", "<": "Lt", "<=": "Le", "==": "Eq", "!=": "Ne"}
# Python's binding powers for the operators Qlib's Expression class overloads.
_BINDING = {"|": 10, "&": 20, "+": 30, "-": 30, "*": 40, "/": 40}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            bad = at + len(text[at:]) - len(text[at:].lstrip())
            raise ExpressionError(f"unexpected character {text[bad]!r}", text, bad)
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _fold(op: str, left: int | float, right: int | float) -> int | float:
    """Arithmetic on two literals, done by Python as Qlib's eval would."""
    if op == "Add":
        return left + right
    if op == "Sub":
        return left - right
    if op == "Mul":
        return left * right
    if op == "Div":
        return left / right
    return left**right


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.at = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text != text:
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise ExpressionError(f"expected {text!r}, found {found}", self.text, token.pos)
        return token

    def fail(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, self.text, pos)

    def parse(self) -> Node:
        node = self.comparison()
        token = self.peek()
        if token.kind != "end":
            raise self.fail(f"unexpected {token.text!r}", token.pos)
        return node

    def comparison(self) -> Node:
        left = self.binary(0)
        token = self.peek()
        if token.text not in _COMPARE:
            return left
        self.take()
        right = self.binary(0)
        following = self.peek()
        if following.text in _COMPARE:
            # Python would chain these into `a < b and b < c`, which Qlib silently reduces to
            # `b < c`; refusing is kinder than reproducing that.
            raise self.fail("chained comparisons are not supported", following.pos)
        return self.combine(_COMPARE[token.text], left, right, token.pos)

    def binary(self, min_binding: int) -> Node:
        left = self.unary()
        while True:
            token = self.peek()
            binding = _BINDING.get(token.text) if token.kind == "op" else None
            if binding is None or binding <= min_binding:
                return left
            self.take()
            right = self.binary(binding)
            left = self.combine(_BINARY[token.text], left, right, token.pos)

    def unary(self) -> Node:
        token = self.peek()
        if token.text in ("-", "+"):
            self.take()
            operand = self.unary_operand()
            if token.text == "+":
                return operand
            if isinstance(operand, Const):
                return Const(-operand.value, token.pos)
            return Call("Neg", (operand,), token.pos)
        return self.power()

    def unary_operand(self) -> Node:
        token = self.peek()
        if token.text in ("-", "+"):
            return self.unary()
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        token = self.peek()
        if token.text != "**":
            return base
        self.take()
        # Right-associative, and its right side may itself carry a unary sign: 2**-1.
        exponent = self.unary() if self.peek().text in ("-", "+") else self.power()
        return self.combine("Power", base, exponent, token.pos)

    def atom(self) -> Node:
        token = self.take()
        if token.kind == "num":
            is_int = re.fullmatch(r"\d+", token.text) is not None
            return Const(int(token.text) if is_int else float(token.text), token.pos)
        if token.kind == "field":
            name = token.text[1:]
            if name not in FIELDS:
                raise self.fail(
                    f"unknown field ${name} (known: {', '.join('$' + f for f in FIELDS)})",
                    token.pos,
                )
            return Field(name, token.pos)
        if token.kind == "name":
            return self.call(token)
        if token.text == "(":
            inner = self.comparison()
            self.expect(")")
            return inner
        found = "end of expression" if token.kind == "end" else repr(token.text)
        raise self.fail(f"expected a value, found {found}", token.pos)

    def call(self, name: _Token) -> Node:
        opening = self.peek()
        if opening.text != "(":
            raise self.fail(
                f"{name.text!r} is not a field or a call; fields start with $", name.pos
            )
        self.take()
        args: list[Node] = []
        if self.peek().text != ")":
            args.append(self.comparison())
            while self.peek().text == ",":
                self.take()
                args.append(self.comparison())
        self.expect(")")
        return Call(name.text, tuple(args), name.pos)

    def combine(self, op: str, left: Node, right: Node, pos: int) -> Node:
        if isinstance(left, Const) and isinstance(right, Const) and op in _FOLDABLE:
            try:
                return Const(_fold(op, left.value, right.value), pos)
            except ZeroDivisionError as exc:
                raise self.fail("division by zero between literals", pos) from exc
        return Call(op, (left, right), pos)


_FOLDABLE = ("Add", "Sub", "Mul", "Div", "Power")


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """Parse one Qlib expression string into a syntax tree (no operator checking yet). Trees
    are immutable: a string parsed again (every run of Alpha158's 158) comes from a cache."""
    return _Parser(text).parse()
