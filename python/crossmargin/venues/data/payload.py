"""Reading venues' JSON payloads: the small toolkit every venue adapter shares.

A payload is JSON a user already fetched from a venue (the library makes no network call).
:class:`Node` walks it with the path of every value kept, so that a problem is a typed error
naming the payload and the field, e.g. ``binance leverageBracket.json: [3].brackets[0].cum:
missing``. Fields an adapter does not read are ignored (venues add fields all the time).

- Numbers arrive as decimal strings (``"0.41047590"``) or JSON numbers;
  :meth:`Node.num` converts either to the nearest float64 (Python's ``float`` of a decimal
  string is correctly rounded), and :meth:`Node.fixed` to an exact integer count of a
  fixed-point unit (``fixed("1.23", 6)`` = 1,230,000), refusing a value with more digits.
- A problem in a parameters payload is a :class:`~crossmargin.exceptions.ConfigError`
  (``field`` = "PAYLOAD: PATH"), in an account payload a
  :class:`~crossmargin.exceptions.BookError` (``column`` = "PAYLOAD: PATH"); a value of the
  wrong JSON type is their ``*TypeError`` variant.
- :class:`AccountIds` maps a venue's string account ids (addresses, user ids, file names)
  to int64 book ids; the mapping comes back with the book.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.book import Book
from crossmargin.exceptions import BookError, BookTypeError, ConfigError, ConfigTypeError
from crossmargin.table import Table

PARAMS = "params"
ACCOUNTS = "accounts"


class Node:
    """A value inside a payload, with where it is: ``Node(data, "okx positions.json")``.

    ``kind`` is :data:`PARAMS` (errors are ``ConfigError``) or :data:`ACCOUNTS`
    (``BookError``)."""

    __slots__ = ("kind", "path", "payload", "value")

    def __init__(self, value: Any, payload: str, kind: str = PARAMS, path: str = "") -> None:
        self.value, self.payload, self.kind, self.path = value, payload, kind, path

    # ---- errors ----------------------------------------------------------------------------
    def where(self, key: str | int | None = None) -> str:
        """``"PAYLOAD: PATH"`` of this node, or of its child ``key``."""
        return f"{self.payload}: {self._child_path(key) or '(top level)'}"

    def error(
        self, message: str, key: str | int | None = None, *, wrong_type: bool = False
    ) -> Exception:
        """The typed error for this payload kind, naming the payload and the field."""
        where = self.where(key)
        text = f"{where}: {message}"
        if self.kind == PARAMS:
            return (ConfigTypeError if wrong_type else ConfigError)(text, field=where)
        return (BookTypeError if wrong_type else BookError)(text, column=where)

    def _child_path(self, key: str | int | None) -> str:
        if key is None:
            return self.path
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    # ---- structure -------------------------------------------------------------------------
    def child(self, value: Any, key: str | int) -> Node:
        return Node(value, self.payload, self.kind, self._child_path(key))

    def _mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.value, Mapping):
            raise self.error(f"expected an object, got {_json_type(self.value)}", wrong_type=True)
        return self.value

    def has(self, key: str) -> bool:
        """The key is present and not null."""
        return isinstance(self.value, Mapping) and self.value.get(key) is not None

    def __getitem__(self, key: str) -> Node:
        """A required member (missing or null: an error naming it)."""
        m = self._mapping()
        if m.get(key) is None:
            raise self.error("missing", key)
        return self.child(m[key], key)

    def get(self, key: str) -> Node | None:
        """An optional member: None when missing or null."""
        m = self._mapping()
        return None if m.get(key) is None else self.child(m[key], key)

    def entries(self) -> list[tuple[str, Node]]:
        """The members of an object, as (key, node) pairs in the payload's order."""
        return [(str(k), self.child(v, str(k))) for k, v in self._mapping().items()]

    def items(self) -> Iterator[Node]:
        """The elements of a list."""
        if not isinstance(self.value, list | tuple):
            raise self.error(f"expected a list, got {_json_type(self.value)}", wrong_type=True)
        for i, v in enumerate(self.value):
            yield self.child(v, i)

    def list(self, key: str) -> list[Node]:
        """The elements of a required list member."""
        return list(self[key].items())

    # ---- leaves ----------------------------------------------------------------------------
    def text(self, key: str | None = None) -> str:
        """A string (this node, or its required member ``key``)."""
        n = self if key is None else self[key]
        if not isinstance(n.value, str):
            raise n.error(f"expected a string, got {_json_type(n.value)}", wrong_type=True)
        return n.value

    def num(self, key: str | None = None) -> float:
        """A finite number from a decimal string or a JSON number, correctly rounded."""
        n = self if key is None else self[key]
        return decimal_float(n.value, n)

    def opt_num(self, key: str, default: float) -> float:
        """An optional number: ``default`` when missing, null or the empty string (venues
        send ``""`` for "not applicable")."""
        n = self.get(key)
        if n is None or n.value == "":
            return default
        return decimal_float(n.value, n)

    def fixed(self, decimals: int, key: str | None = None) -> int:
        """The exact integer count of units of 10**-decimals (a venue's fixed-point unit)."""
        n = self if key is None else self[key]
        return decimal_fixed(n.value, decimals, n)

    def integer(self, key: str | None = None) -> int:
        """An integer (a JSON integer or a string of digits)."""
        return self.fixed(0, key)

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean (JSON true/false, or the strings "true"/"false" some venues send)."""
        n = self.get(key)
        if n is None:
            return default
        if isinstance(n.value, bool):
            return n.value
        if isinstance(n.value, str) and n.value.lower() in ("true", "false"):
            return n.value.lower() == "true"
        raise n.error(f"expected true or false, got {n.value!r}", wrong_type=True)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _decimal(value: Any, node: Node) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise node.error(f"expected a number, got {_json_type(value)}", wrong_type=True)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise node.error(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise node.error(f"{value!r} is not a decimal number") from None
    if not d.is_finite():
        raise node.error(f"{value!r} is not a finite number")
    return d


def decimal_float(value: Any, node: Node) -> float:
    """A decimal string or JSON number → the nearest float64 (ties to even).

    ``float(Decimal(s))`` rounds once, from the exact decimal: ``"0.1"`` → 0.1, and a long
    string such as ``"0.100000000000000005551115123125782702118158340454101562500001"``
    rounds up past the tie where a two-step parse could not. Out of float range: an error."""
    f = float(_decimal(value, node))
    if not math.isfinite(f):
        raise node.error(f"{value!r} is out of the float64 range")
    return f


def decimal_fixed(value: Any, decimals: int, node: Node) -> int:
    """A decimal string or JSON number → the exact integer count of 10**-decimals units;
    a value with more digits than the unit holds is an error (nothing is rounded)."""
    d = _decimal(value, node)
    # From the digits and exponent, in integers: no decimal context (28 digits) rounds it.
    sign, digits, exponent = d.as_tuple()
    coefficient = int("".join(map(str, digits)) or "0")
    shift = int(exponent) + decimals
    if shift >= 0:
        n = coefficient * 10**shift
    else:
        n, rest = divmod(coefficient, 10**-shift)
        if rest:
            raise node.error(f"{value!r} has more than {decimals} decimals")
    return -n if sign else n


# ---- reading payload files ---------------------------------------------------------------
def read_json(path: str | Path, kind: str = PARAMS) -> Any:
    """One JSON file; a missing or malformed file is a typed error naming it."""
    p = Path(path)
    err: type[Exception] = ConfigError if kind == PARAMS else BookError
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _file_error(err, p, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _file_error(err, p, f"cannot be read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _file_error(err, p, f"invalid JSON: {e}") from None


def _file_error(err: type[Exception], p: Path, message: str) -> Exception:
    if err is ConfigError:
        return ConfigError(f"{p}: {message}", field=str(p))
    return BookError(f"{p}: {message}", column=str(p))


def read_params(folder: str | Path) -> dict[str, Any]:
    """Every ``*.json`` of a folder, by file stem: ``{"exchangeInfo": {...}, ...}``."""
    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a folder of parameter payloads", field=str(p))
    return {f.stem: read_json(f, PARAMS) for f in sorted(p.glob("*.json"))}


def read_accounts(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Account payloads of a folder: each sub-folder is one account (its name the account
    id) holding ``PAYLOAD.json`` files; a top-level ``ID.json`` is an account with one
    payload, read under the name ``""`` (the venue's single account payload)."""
    p = Path(folder)
    if not p.is_dir():
        raise BookError(f"{p}: not a folder of account payloads", column=str(p))
    out: dict[str, dict[str, Any]] = {}
    for entry in sorted(p.iterdir()):
        if entry.is_dir():
            out[entry.name] = {f.stem: read_json(f, ACCOUNTS) for f in sorted(entry.glob("*.json"))}
        elif entry.suffix == ".json":
            out[entry.stem] = {"": read_json(entry, ACCOUNTS)}
    if not out:
        raise BookError(f"{p}: holds no account payloads (*.json or sub-folders)", column=str(p))
    return out


def payload(payloads: Mapping[str, Any], name: str, where: str, kind: str = PARAMS) -> Node:
    """The required payload ``name`` (e.g. ``"leverageBracket"``) of a set, as a :class:`Node`
    labelled ``where`` (e.g. ``"binance"``)."""
    if name not in payloads:
        label = f"{where} {name}.json"
        have = ", ".join(sorted(payloads)) or "none"
        msg = f"{label}: missing payload (have: {have})"
        if kind == PARAMS:
            raise ConfigError(msg, field=label)
        raise BookError(msg, column=label)
    return Node(payloads[name], f"{where} {name}.json", kind)


def payload_parts(
    payloads: Mapping[str, Any], name: str, where: str, kind: str = PARAMS, required: bool = True
) -> list[Node]:
    """A payload served in parts (one file per category or page): ``NAME.json`` and every
    ``NAME.PART.json`` (e.g. ``instruments-info.linear.json``), in file-name order."""
    keys = sorted(k for k in payloads if k == name or k.startswith(name + "."))
    if not keys and required:
        payload(payloads, name, where, kind)  # raises, naming what is missing
    return [Node(payloads[k], f"{where} {k}.json", kind) for k in keys]


def optional_payload(
    payloads: Mapping[str, Any], name: str, where: str, kind: str = PARAMS
) -> Node | None:
    return payload(payloads, name, where, kind) if name in payloads else None


# ---- account ids -------------------------------------------------------------------------
def account_id(name: str) -> int:
    """A venue's account name (string) → a stable int64 id: a decimal integer name in the
    int64 range is kept as that number; any other name is the first 8 bytes of its
    BLAKE2b hash with the sign bit cleared (the same id on every machine and run)."""
    s = str(name)
    if s.isdigit() or (s.startswith("-") and s[1:].isdigit()):
        v = int(s)
        if -(2**63) <= v < 2**63:
            return v
    h = hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") & (2**63 - 1)


@dataclass
class AccountIds:
    """String account ids ↔ int64 book ids (:func:`account_id`); a collision of two names
    on one id is an error naming both."""

    ids: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str) -> int:
        if name in self.ids:
            return self.ids[name]
        v = account_id(name)
        for other, w in self.ids.items():
            if w == v:
                raise BookError(
                    f"accounts {other!r} and {name!r} map to the same id {v}", column="account"
                )
        self.ids[name] = v
        return v

    def table(self) -> Table:
        """``account`` (int64) and ``name`` (str), in ascending account id."""
        names = sorted(self.ids, key=self.ids.__getitem__)
        return Table(
            {
                "account": np.array([self.ids[n] for n in names], dtype=np.int64),
                "name": np.array(names, dtype=object),
            }
        )


SIDES = ("both", "long", "short")


@dataclass
class Rows:
    """Book rows being collected from payloads: balances and positions (with ``side``:
    "both" for a one-way position, "long" / "short" for a hedge-mode leg)."""

    balances: dict[str, list[Any]] = field(
        default_factory=lambda: {"account": [], "asset": [], "qty": []}
    )
    positions: dict[str, list[Any]] = field(
        default_factory=lambda: {
            "account": [],
            "market": [],
            "qty": [],
            "entry_price": [],
            "isolated_margin": [],
            "side": [],
        }
    )

    def balance(self, account: int, asset: str, qty: float) -> None:
        self.balances["account"].append(account)
        self.balances["asset"].append(asset)
        self.balances["qty"].append(qty)

    def position(
        self,
        account: int,
        market: str,
        qty: float,
        entry_price: float,
        isolated_margin: float = 0.0,
        side: str = "both",
    ) -> None:
        p = self.positions
        p["account"].append(account)
        p["market"].append(market)
        p["qty"].append(qty)
        p["entry_price"].append(entry_price)
        p["isolated_margin"].append(isolated_margin)
        p["side"].append(side)

    def tables(self) -> tuple[Table, Table]:
        b = self.balances
        p = self.positions
        balances = Table(
            {
                "account": np.array(b["account"], dtype=np.int64),
                "asset": np.array(b["asset"], dtype=object),
                "qty": np.array(b["qty"], dtype=np.float64),
            }
        )
        positions = Table(
            {
                "account": np.array(p["account"], dtype=np.int64),
                "market": np.array(p["market"], dtype=object),
                "qty": np.array(p["qty"], dtype=np.float64),
                "entry_price": np.array(p["entry_price"], dtype=np.float64),
                "isolated_margin": np.array(p["isolated_margin"], dtype=np.float64),
                "side": np.array(p["side"], dtype=object),
            }
        )
        return balances, positions


# ---- what an account adapter returns -------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    """A venue's account payloads as book tables.

    - ``balances``: account, asset, qty; ``positions``: account, market, qty, entry_price,
      isolated_margin, side ("both" one-way, "long" / "short" hedge-mode legs);
    - ``accounts``: the account-name ↔ int64 id mapping (:class:`AccountIds`);
    - ``reported``: the venue's own figures found in the payloads, one row per account
      (``account`` then venue-named columns, NaN where a payload does not carry one), for
      comparing with the engine's results;
    - ``marks``: the mark prices the payloads report, by market symbol (a universe can be
      built at them: ``universe(params, marks=imported.marks)``).
    """

    venue: str
    balances: Table
    positions: Table
    accounts: Table
    reported: Table
    marks: Mapping[str, float] = field(default_factory=dict)

    @property
    def hedged(self) -> bool:
        """Any hedge-mode leg ("long" / "short") among the positions."""
        return bool(len(self.positions) and np.any(self.positions["side"] != "both"))

    def book(self) -> Book:
        """The rows as a :class:`~crossmargin.Book`, the ``side`` column passed along: a
        one-way book holds one net position per account and market, a hedge-mode payload
        its "long" and "short" legs, each margined as a position of its own (docs/MODEL.md
        "Book")."""
        return Book.from_arrays(self.balances.to_dict(), self.positions.to_dict())


@dataclass
class AccountPayloads:
    """One account's payloads as :class:`AccountReader` hands them to an adapter: its name,
    int64 id, the label its errors carry (``where``, e.g. ``"bybit alice"``) and the dict its
    reported figures go into."""

    name: str
    id: int
    where: str
    payloads: Mapping[str, Any]
    reported: dict[str, float]

    def optional(self, name: str) -> Node | None:
        """The payload ``name`` of this account, or None."""
        return optional_payload(self.payloads, name, self.where, ACCOUNTS)

    def either(self, first: str, second: str) -> tuple[Node | None, Node | None]:
        """Two optional payloads of which at least one must be there: neither is a
        ``BookError`` naming the missing ``second``."""
        a, b = self.optional(first), self.optional(second)
        if a is None and b is None:
            self.require(second)
        return a, b

    def require(self, name: str) -> Node:
        """The required payload ``name`` (missing: a ``BookError`` naming it and what the
        account has)."""
        return payload(self.payloads, name, self.where, ACCOUNTS)


class AccountReader:
    """What every venue's ``accounts()`` shares: iterate the accounts in name order (each with
    its id and reported-figures dict), collect book rows and marks, and build the
    :class:`Imported` report.

    Example::

        reader = AccountReader("okx", payloads)
        for acc in reader:
            bal, pos = acc.either("balance", "positions")
            ...  # reader.rows.balance(acc.id, ...), acc.reported[...] = ...
        return reader.imported(("total_eq", "adj_eq"))
    """

    def __init__(
        self, venue: str, payloads: Mapping[str, Mapping[str, Any]], *, suffix: str = ""
    ) -> None:
        """``suffix`` follows the account name in the error label (``"binance alice/"``)."""
        self.venue, self.payloads, self.suffix = venue, payloads, suffix
        self.ids = AccountIds()
        self.rows = Rows()
        self.reported: dict[int, dict[str, float]] = {}
        self.marks: dict[str, float] = {}

    def __iter__(self) -> Iterator[AccountPayloads]:
        for name in sorted(self.payloads):
            a = self.ids(name)
            yield AccountPayloads(
                name,
                a,
                f"{self.venue} {name}{self.suffix}",
                self.payloads[name],
                self.reported.setdefault(a, {}),
            )

    def imported(self, columns: tuple[str, ...] | None = None) -> Imported:
        """The collected rows as :class:`Imported`; ``reported`` with ``columns`` (default:
        every column any account reported, sorted)."""
        if columns is None:
            columns = tuple(sorted({c for rep in self.reported.values() for c in rep}))
        balances, positions = self.rows.tables()
        reported = reported_table(self.reported, columns)
        return Imported(self.venue, balances, positions, self.ids.table(), reported, self.marks)


def round_down(x: float, decimals: int) -> float:
    """``x`` truncated toward zero at ``decimals`` decimals (Binance truncates its margin
    figures to 8 decimals: 0.4972023376 → 0.49720233), from ``x`` written with 15 significant
    digits — all a float64 holds — so that float noise (3.9678799999999997 for a venue's exact
    3.96788) does not cost the last digit."""
    d = Decimal(f"{float(x):.15g}").quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)
    return float(d)


def reported_table(rows: dict[int, dict[str, float]], columns: tuple[str, ...]) -> Table:
    """``{account: {column: value}}`` → a table in ascending account id, NaN where missing."""
    accounts = sorted(rows)
    out: dict[str, Any] = {"account": np.array(accounts, dtype=np.int64)}
    for c in columns:
        out[c] = np.array([rows[a].get(c, math.nan) for a in accounts], dtype=np.float64)
    return Table(out)


__all__ = [
    "ACCOUNTS",
    "PARAMS",
    "SIDES",
    "AccountIds",
    "AccountPayloads",
    "AccountReader",
    "Imported",
    "Node",
    "Rows",
    "account_id",
    "decimal_fixed",
    "decimal_float",
    "optional_payload",
    "payload",
    "payload_parts",
    "read_accounts",
    "read_json",
    "read_params",
    "reported_table",
    "round_down",
]
