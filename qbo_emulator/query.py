"""QBO's query language.

``SELECT * | COUNT(*) FROM entity [WHERE a op v [AND ...]] [ORDERBY a [DESC]] [STARTPOSITION n]
[MAXRESULTS n]``
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from qbo_emulator import clock
from qbo_emulator.errors import query_parse_error, query_validation_error

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_CAP = 1000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<operator><=|>=|=|<|>)
      | (?P<punctuation>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    value: object
    column: int


@dataclass
class Condition:
    path: str
    operator: str
    values: list


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


def _tokens(text: str) -> list[Token]:
    tokens, position = [], 0
    stripped_end = len(text.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise query_parse_error(
                f"Lexical error at line 1, column {position + 1}. Encountered: "
                f"{text[position : position + 1]!r}"
            )
        kind = match.lastgroup
        raw = match.group(kind)
        value: object = raw
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif kind == "number":
            value = Decimal(raw)
        tokens.append(Token(kind, raw, value, match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def keyword_ahead(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.upper() in words

    def take(self, kind: str | None = None, text: str | None = None, expected: str = "") -> Token:
        token = self.peek()
        if token is None or (kind and token.kind != kind) or (text and token.text.upper() != text):
            found = "<EOF>" if token is None else f'"{token.text}" at line 1, column {token.column}'
            raise query_parse_error(f"Encountered {found}. Was expecting: {expected or text or kind}")
        self.index += 1
        return token

    def parse(self) -> Query:
        self.take("word", "SELECT")
        count = self.select_list()
        self.take("word", "FROM")
        query = Query(entity=self.take("word", expected="an entity name").text, count=count)
        if self.keyword_ahead("WHERE"):
            self.index += 1
            query.conditions.append(self.condition())
            while self.keyword_ahead("AND"):
                self.index += 1
                query.conditions.append(self.condition())
        if self.keyword_ahead("ORDERBY", "ORDER"):
            if self.take().text.upper() == "ORDER":
                self.take("word", "BY")
            query.order = self.order_list()
        while self.keyword_ahead("STARTPOSITION", "MAXRESULTS"):
            keyword = self.take().text.upper()
            number = self.take("number", expected="a number").value
            if keyword == "STARTPOSITION":
                query.start_position = max(int(number), 1)
            else:
                query.max_results = min(int(number), MAX_RESULTS_CAP)
        if self.peek() is not None:
            token = self.peek()
            raise query_parse_error(
                f'Encountered " <IDENTIFIER> "{token.text} "" at line 1, column '
                f"{token.column}. Was expecting: <EOF>"
            )
        return query

    def select_list(self) -> bool:
        if self.keyword_ahead("COUNT"):
            self.index += 1
            self.take("punctuation", "(")
            self.take("punctuation", "*")
            self.take("punctuation", ")")
            return True
        if self.peek() is not None and self.peek().text == "*":
            self.index += 1
        else:
            self.take("word", expected="* or a property")
        # Listed properties ("*, Sku" from python-quickbooks) do not narrow QBO's JSON response.
        while self.peek() is not None and self.peek().text == ",":
            self.index += 1
            self.take("word", expected="a property")
        return False

    def condition(self) -> Condition:
        path = self.take("word", expected="a property").text
        token = self.peek()
        if token is not None and token.kind == "operator":
            self.index += 1
            return Condition(path, token.text, [self.literal()])
        operator = self.take("word", expected="an operator").text.upper()
        if operator == "LIKE":
            return Condition(path, "LIKE", [self.take("string", expected="a quoted pattern").value])
        if operator != "IN":
            raise query_parse_error(
                f'Encountered "{operator}". Was expecting one of: =, <, >, <=, >=, IN, LIKE'
            )
        self.take("punctuation", "(")
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":
            self.index += 1
            values.append(self.literal())
        self.take("punctuation", ")")
        return Condition(path, "IN", values)

    def literal(self) -> object:
        token = self.take(expected="a value")
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        raise query_parse_error(
            f'Encountered "{token.text}" at line 1, column {token.column}. Was expecting a value'
        )

    def order_list(self) -> list[tuple[str, bool]]:
        order = []
        while True:
            path = self.take("word", expected="a property").text
            descending = False
            if self.keyword_ahead("ASC", "DESC"):
                descending = self.take().text.upper() == "DESC"
            order.append((path, descending))
            if self.peek() is None or self.peek().text != ",":
                return order
            self.index += 1


def parse(text: str) -> Query:
    return _Parser(text).parse()


# --- evaluation ---------------------------------------------------------------------------------------------


def lookup(obj: dict, path: str) -> object:
    value: object = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        if part in value:  # spelled as stored, the usual case: no scan of the keys
            value = value[part]
            continue
        lowered = part.lower()
        value = next((item for key, item in value.items() if key.lower() == lowered), None)
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _as_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _comparable(value: object, literal: object) -> tuple[object, object]:
    if isinstance(literal, bool) or isinstance(value, bool):
        return str(value).lower() == "true", str(literal).lower() == "true"
    if (
        isinstance(literal, str)
        and isinstance(value, str)
        and _MOMENT.match(literal)
        and _MOMENT.match(value)
    ):
        try:
            return clock.parse_moment(value), clock.parse_moment(literal)
        except ValueError:
            pass
    number, literal_number = _as_decimal(value), _as_decimal(literal)
    if number is not None and literal_number is not None:
        return number, literal_number
    return str(value).casefold(), str(literal).casefold()


def _like(value: object, pattern: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(obj: dict, condition: Condition) -> bool:
    value = lookup(obj, condition.path)
    if value is None:
        return False
    if condition.operator == "LIKE":
        return _like(value, condition.values[0])
    if condition.operator == "IN":
        return any(
            left == right for left, right in (_comparable(value, literal) for literal in condition.values)
        )
    left, right = _comparable(value, condition.values[0])
    try:
        return {
            "=": left == right,
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[condition.operator]
    except TypeError:
        return False


def sort_key(value: object) -> tuple:
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, Decimal(int(value)))
    number = _as_decimal(value)
    if number is not None:
        return (1, number)
    if isinstance(value, str) and _MOMENT.match(value):
        try:
            moment: datetime = clock.parse_moment(value)
            return (2, moment.timestamp())
        except ValueError:
            pass
    return (3, str(value).casefold())


def selection_key(query: Query) -> tuple:
    """What decides the rows a query selects and their order: equal keys select the same rows in the same
    order from the same objects, whatever their paging or COUNT(*)."""
    # A literal's type and text, not its value: True == 1 == Decimal("1.0") yet they compare differently.
    conditions = tuple(
        (condition.path, condition.operator, tuple((type(value), str(value)) for value in condition.values))
        for condition in query.conditions
    )
    return query.entity, conditions, tuple(query.order)


def select(query: Query, rows: list[dict], *, hides_inactive: bool) -> list[dict]:
    """The ``rows`` (already limited to the query's entity) that the query selects, in its order."""
    filters_active = any(condition.path.lower() == "active" for condition in query.conditions)
    selected = [
        row
        for row in rows
        if all(matches(row, condition) for condition in query.conditions)
        and not (hides_inactive and not filters_active and row.get("Active") is False)
    ]
    for path, descending in reversed(query.order or [("Id", False)]):
        selected.sort(key=lambda row, path=path: sort_key(lookup(row, path)), reverse=descending)
    return selected


def respond(query: Query, selected: list[dict]) -> dict:
    """The ``QueryResponse`` body: the count of the ``selected`` rows, or the page of them asked for."""
    if query.count:
        return {"totalCount": len(selected)}
    if query.max_results <= 0:
        raise query_validation_error("MAXRESULTS must be at least 1")
    page = selected[query.start_position - 1 : query.start_position - 1 + query.max_results]
    if not page:
        return {}
    return {query.entity: page, "startPosition": query.start_position, "maxResults": len(page)}
