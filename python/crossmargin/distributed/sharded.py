"""Scale-out on Dask (``dask.distributed``): partitioned books, sharded margin and stress,
and liquidation cascades as bulk-synchronous rounds (docs/MODEL.md "Distributed runs").

Accounts are independent given prices, so a book is partitioned by account
(:func:`write_partitioned`: every row of an account lands in one partition), the universe is
broadcast once to every worker, each partition is evaluated where it is read, results are
written per partition, and only summaries travel back. Summaries merge *exactly*: counts and
histograms are integers, sums are carried as exact binary fixed-point integers and rounded
once at the end (so they equal ``math.fsum`` of the unsharded columns whatever the
partitioning), top-k lists are cut by a total order (value, then account id).

The cascade runs on stateful shards (Dask actors, one per partition) driven round by round
from the client through ``crossmargin._core.CascadeDriver`` /
``CascadeShard`` (``rust/crossmargin-core/src/cascade/step.rs``), both made by
``_core.Engine`` from the same :class:`~crossmargin.cascade.CascadeRules` as
``Engine.cascade``: shards select and settle
their own accounts; the driver merges candidates in global priority order, fills each
market's net flow once, owns the insurance fund, ranks deleveraging counterparties across
shards and moves the marks. The event log, round table, totals and final book equal
``Engine.cascade`` bit for bit for any number of partitions (docs/SCALING.md).

Needs the optional extra: ``pip install crossmargin[distributed]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin import _core
from crossmargin.book import Book, SymbolColumn
from crossmargin.cascade import CascadeConfig, CascadeResult, CascadeRules, assemble
from crossmargin.engine import Engine
from crossmargin.exceptions import BookError, ConfigError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.result import MarginResult
from crossmargin.risk.stress import Scenario, scenario_prices
from crossmargin.table import Table
from crossmargin.universe import Universe

if TYPE_CHECKING:
    from distributed import Client

MANIFEST = "_dataset.json"
PART = "part-{:05d}"
FORMAT = "crossmargin partitioned book"
# 2: per-partition row counts, account counts and file checksums (1 had only the totals).
FORMAT_VERSION = 2
TABLES = ("balances", "positions")
_HEX = frozenset("0123456789abcdef")
# Margin-ratio histogram edges (mm / adj_equity_maint; ≥ 1 is below maintenance). The last
# bin also holds +inf (maintenance equity gone).
RATIO_BINS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0, math.inf)
SUM_FIELDS = ("equity", "upnl", "adj_equity_maint", "im", "mm", "free_collateral")


# ---- partitioning ----------------------------------------------------------------------
def partition_of(account: np.ndarray, n_partitions: int) -> np.ndarray:
    """The partition of each account id: Fibonacci hashing of the id, modulo n (so dense,
    strided or clustered ids all spread evenly; the same id always lands in the same part)."""
    a = np.asarray(account, dtype=np.int64).view(np.uint64)
    h = (a * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    return (h % np.uint64(n_partitions)).astype(np.int64)


def _symbol_array(col: SymbolColumn, names: list[str], rows: np.ndarray) -> Any:
    """Universe indices stay integers (the book's own encoding), symbols stay symbols: the
    code order inside each account, and so every floating-point sum, is the book's."""
    import pyarrow as pa

    if col.labels is None:
        return pa.array(col.codes[rows], type=pa.uint32())
    labels = np.array(col.labels, dtype=object)
    return pa.array(labels[col.codes[rows]] if len(rows) else [], type=pa.string())


class PartitionWriter:
    """Appends books (e.g. chunks of a synthetic book too big for memory) to a partitioned
    Parquet dataset: ``folder/part-00000/balances.parquet``, ``positions.parquet``, ... and
    ``folder/_dataset.json``, the manifest: per partition its row counts, its account count and
    the sha256 of each file, plus totals (docs/SCALING.md, "The manifest, and what every read
    verifies"). Rows keep their input order within each partition; every partition gets both
    files, with zero rows when no account hashes to it.

    The manifest is written last, atomically, by :meth:`close`: until then (and after a
    failed ``write`` or an exception inside ``with``) the folder has no manifest and every
    reader refuses it, so a half-written dataset can never be read as a smaller one."""

    def __init__(self, folder: str | Path, universe: Universe, n_partitions: int) -> None:
        if not isinstance(n_partitions, int) or n_partitions < 1:
            raise ConfigError(f"n_partitions: {n_partitions!r} must be a positive integer")
        self.folder = Path(folder)
        self.universe = universe
        self.n = n_partitions
        self.accounts = 0
        self._writers: dict[tuple[int, str], Any] = {}
        self._closed = False
        self._failed = False
        self.folder.mkdir(parents=True, exist_ok=True)
        ours = {PART.format(i) for i in range(self.n)}
        stray = sorted(p.name for p in self.folder.glob("part-*") if p.name not in ours)
        if stray:
            raise BookError(
                f"{self.folder / stray[0]}: the folder already holds a partition that a dataset "
                f"of {self.n} partitions does not have: write to an empty folder"
            )
        # The files are about to be replaced: an earlier manifest no longer describes them.
        (self.folder / MANIFEST).unlink(missing_ok=True)

    def write(self, book: Book) -> None:
        if self._closed:
            raise BookError(f"{self.folder}: this PartitionWriter is closed")
        try:
            self._write(book)
        except BaseException:
            self._failed = True  # some partitions may hold this book's rows, others not
            raise

    def _write(self, book: Book) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if book.has_orders:
            # Nothing is dropped silently: a dataset holds balances and positions (hedge legs
            # keep their side column); open orders stay with the in-memory book.
            raise BookError(
                f"{self.folder}: a partitioned dataset holds balances and positions; this book "
                "has open orders (write Book.from_arrays(book.balances, book.positions), or "
                "evaluate it in one process)",
                table="orders",
            )

        a_names = [a.symbol for a in self.universe.assets]
        m_names = [m.symbol for m in self.universe.markets]
        b, p = book.balances, book.positions
        self.accounts += book.n_accounts
        for table, cols, sym, names in (
            ("balances", b, "asset", a_names),
            ("positions", p, "market", m_names),
        ):
            part = partition_of(cols["account"], self.n)
            order = np.argsort(part, kind="stable")
            bounds = np.searchsorted(part[order], np.arange(self.n + 1))
            for i in range(self.n):
                rows = order[bounds[i] : bounds[i + 1]]
                data = {
                    k: _symbol_array(v, names, rows) if k == sym else pa.array(v[rows])
                    for k, v in cols.items()
                }
                t = pa.table(data)
                key = (i, table)
                w = self._writers.get(key)
                if w is None:
                    d = self.folder / PART.format(i)
                    d.mkdir(exist_ok=True)
                    w = pq.ParquetWriter(d / f"{table}.parquet", t.schema)
                    self._writers[key] = w
                elif not w.schema.equals(t.schema):
                    raise BookError(
                        f"{table}: this book's {sym} column is encoded differently from the "
                        "books already written (symbols vs universe indices)"
                    )
                w.write_table(t)

    def _close_files(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        self._closed = True

    def close(self) -> Path:
        """Closes the files and writes the manifest (once; closing again does nothing)."""
        if self._closed:
            return self.folder
        if self._failed:
            self._close_files()
            raise BookError(
                f"{self.folder}: a write failed, so the partitions are incomplete: no manifest "
                "written (the dataset cannot be read); write it again"
            )
        if not self._writers:  # nothing written: still n partitions, of zero rows
            self._write(Book.from_arrays())
        self._close_files()
        entries = [_describe(self.folder / PART.format(i)) for i in range(self.n)]
        _write_manifest(self.folder, entries)
        return self.folder

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._close_files()  # no manifest: the partial dataset stays unreadable


def write_partitioned(
    book: Book, universe: Universe, folder: str | Path, n_partitions: int
) -> Path:
    """Writes ``book`` as ``n_partitions`` Parquet partitions by account (see
    :class:`PartitionWriter`); returns the folder."""
    with PartitionWriter(folder, universe, n_partitions) as w:
        w.write(book)
    return Path(folder)


# ---- the manifest ----------------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _count_accounts(*columns: Any) -> int:
    """Distinct account ids over the account columns of a partition's tables (what
    ``Book.n_accounts`` counts)."""
    ids = [
        c.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        for col in columns
        for c in col.chunks
    ]
    x = np.sort(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)
    return int(np.count_nonzero(x[1:] != x[:-1])) + int(len(x) > 0)


def _describe(d: Path) -> dict[str, Any]:
    """A partition's manifest entry, from the files as they are on disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files: dict[str, Any] = {}
    accounts = []
    for t in TABLES:
        data = (d / f"{t}.parquet").read_bytes()
        col = pq.read_table(pa.BufferReader(data), columns=["account"]).column("account")
        files[f"{t}.parquet"] = {"rows": len(col), "bytes": len(data), "sha256": _sha256(data)}
        accounts.append(col)
    return {"name": d.name, "accounts": _count_accounts(*accounts), "files": files}


def _seal(doc: Mapping[str, Any]) -> str:
    """The manifest's own checksum: sha256 of its canonical JSON without this key."""
    body = {k: v for k, v in doc.items() if k != "manifest_sha256"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _write_manifest(folder: Path, entries: list[dict[str, Any]]) -> None:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "partitioning": "fibonacci hash of the account id, modulo n_partitions",
        "checksum": "sha256 of each partition file's bytes",
        "n_partitions": len(entries),
        "accounts": sum(e["accounts"] for e in entries),
        "rows": {t: sum(e["files"][f"{t}.parquet"]["rows"] for e in entries) for t in TABLES},
        "partitions": entries,
    }
    doc["manifest_sha256"] = _seal(doc)
    tmp = folder / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, folder / MANIFEST)


def _span(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} … {names[-1]}"


def _count(doc: Any, key: str, m: Path, where: str) -> int:
    v = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise BookError(f"{m}: corrupt manifest: {where}{key} is {v!r}, not a count")
    return v


def _manifest(folder: Path) -> dict[str, Any]:
    """The dataset's manifest, checked for consistency (not yet against the files)."""
    m = folder / MANIFEST
    try:
        raw = m.read_bytes()
    except FileNotFoundError:
        raise BookError(f"{folder}: not a partitioned book ({MANIFEST} is missing)") from None
    except OSError as e:
        raise BookError(f"{m}: cannot read the manifest: {e}") from None
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise BookError(f"{m}: corrupt manifest (not valid JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BookError(f"{m}: corrupt manifest (not a crossmargin partitioned-book manifest)")
    version = doc.get("format_version")
    if version is None and "partitions" not in doc:
        raise BookError(
            f"{m}: written by an earlier crossmargin, without per-partition row counts and "
            "checksums, so a missing or truncated partition cannot be detected: rewrite the "
            "dataset with crossmargin.distributed.write_partitioned (or PartitionWriter)"
        )
    if version != FORMAT_VERSION:
        raise BookError(
            f"{m}: manifest format_version {version!r}; this crossmargin reads {FORMAT_VERSION}"
        )
    n = _count(doc, "n_partitions", m, "")
    parts = doc.get("partitions")
    if not isinstance(parts, list):
        raise BookError(f"{m}: corrupt manifest: partitions is not a list")
    if n != len(parts):
        names = [x.get("name", "?") if isinstance(x, dict) else "?" for x in parts]
        raise BookError(
            f"{m}: n_partitions is {n} but the manifest lists {len(parts)} partitions "
            f"({_span(names) or 'none'}): the manifest was edited or is damaged"
        )
    if n < 1:
        raise BookError(f"{m}: corrupt manifest: a dataset has at least one partition")
    totals = {"accounts": 0} | {t: 0 for t in TABLES}
    for i, entry in enumerate(parts):
        name = PART.format(i)
        got = entry.get("name") if isinstance(entry, dict) else None
        if got != name:
            raise BookError(f"{m}: corrupt manifest: partitions[{i}] is {got!r}, not {name!r}")
        totals["accounts"] += _count(entry, "accounts", m, f"{name}.")
        files = entry.get("files")
        if not isinstance(files, dict) or set(files) != {f"{t}.parquet" for t in TABLES}:
            raise BookError(
                f"{m}: corrupt manifest: {name}.files must list balances.parquet and "
                "positions.parquet"
            )
        for t in TABLES:
            f = files[f"{t}.parquet"]
            where = f"{name}/{t}.parquet."
            totals[t] += _count(f, "rows", m, where)
            _count(f, "bytes", m, where)
            h = f.get("sha256")
            if not (isinstance(h, str) and len(h) == 64 and all(c in _HEX for c in h)):
                raise BookError(f"{m}: corrupt manifest: {where}sha256 is {h!r}")
    rows = doc.get("rows")
    for key, want, got_total in (
        ("accounts", doc.get("accounts"), totals["accounts"]),
        *(
            (f"rows.{t}", rows.get(t) if isinstance(rows, dict) else None, totals[t])
            for t in TABLES
        ),
    ):
        if want != got_total:
            raise BookError(
                f"{m}: the manifest's {key} is {want!r} but its partitions add up to "
                f"{got_total}: the manifest was edited or is damaged"
            )
    if doc.get("manifest_sha256") != _seal(doc):
        raise BookError(
            f"{m}: the manifest's checksum (manifest_sha256) does not match its content: "
            "it was edited or is damaged"
        )
    return doc


def _plan(folder: str | Path) -> tuple[dict[str, Any], list[tuple[Path, dict[str, Any]]]]:
    """The manifest and its partitions, after checking that the folder holds exactly the
    partitions the manifest lists: none missing, none extra."""
    f = Path(folder)
    doc = _manifest(f)
    entries: list[dict[str, Any]] = doc["partitions"]
    for e in entries:
        _present(f / e["name"], e)
    listed = {e["name"] for e in entries}
    extra = sorted(p.name for p in f.glob("part-*") if p.name not in listed)
    if extra:
        raise BookError(
            f"{f / extra[0]}: a partition the manifest does not list (it lists "
            f"{len(entries)}: {_span(sorted(listed))}): remove it, or rewrite the dataset"
        )
    return doc, [(f / e["name"], e) for e in entries]


def _present(p: Path, entry: Mapping[str, Any]) -> None:
    if not p.is_dir():
        rows = ", ".join(
            f"{v['rows']} {k.removesuffix('s.parquet')} rows" for k, v in entry["files"].items()
        )
        raise BookError(
            f"{p}: partition missing (the manifest lists it with {entry['accounts']} "
            f"accounts, {rows})"
        )


def _read_tables(p: Path, entry: Mapping[str, Any]) -> list[Any]:
    """A partition's two tables, each file checked against its manifest entry: present,
    same sha256, same row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _present(p, entry)
    tables = []
    for t in TABLES:
        name = f"{t}.parquet"
        spec = entry["files"][name]
        f = p / name
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            raise BookError(
                f"{f}: missing (the manifest lists it with {spec['rows']} rows)", table=t
            ) from None
        except OSError as e:
            raise BookError(f"{f}: cannot read: {e}", table=t) from None
        if _sha256(data) != spec["sha256"]:
            try:
                held = f"holds {pq.read_metadata(pa.BufferReader(data)).num_rows} rows"
            except Exception:  # pyarrow raises several unrelated types for damaged files
                held = "is not readable Parquet"
            raise BookError(
                f"{f}: {held} in {len(data)} bytes, the manifest says {spec['rows']} rows in "
                f"{spec['bytes']} bytes, and the sha256 differs: the file was truncated, "
                "altered or replaced",
                table=t,
            )
        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as e:  # pyarrow raises several unrelated types for unreadable files
            raise BookError(f"{f}: cannot read: {e}", table=t) from None
        if table.num_rows != spec["rows"]:
            raise BookError(
                f"{f}: holds {table.num_rows} rows, the manifest says {spec['rows']}", table=t
            )
        tables.append(table)
    return tables


def _check_accounts(p: Path, entry: Mapping[str, Any], accounts: int) -> None:
    if accounts != entry["accounts"]:
        raise BookError(f"{p}: holds {accounts} accounts, the manifest says {entry['accounts']}")


def is_partitioned(folder: str | Path) -> bool:
    """A partitioned dataset: a folder with a manifest, or one that looks like a dataset
    whose manifest is missing (``part-*`` folders of book files, no book files of its own) —
    reading that one then fails on the missing manifest."""
    f = Path(folder)
    if (f / MANIFEST).exists():
        return True
    if not f.is_dir() or any(f.glob("balances.*")) or any(f.glob("positions.*")):
        return False
    return any(any(p.glob(f"{t}.parquet")) for p in f.glob("part-*") for t in TABLES)


def partitions(folder: str | Path) -> list[Path]:
    """The partition folders of a dataset, in order, once the folder is checked to hold
    exactly the partitions its manifest lists (:class:`BookError` otherwise)."""
    return [p for p, _ in _plan(folder)[1]]


def read_partition(path: str | Path, entry: Mapping[str, Any] | None = None) -> Book:
    """One partition as a Book, verified against its manifest entry (``entry``, or the one
    in the dataset's manifest, ``path/../_dataset.json``): both files present, their sha256
    and row counts and the account count as recorded. A partition holding no accounts is an
    empty book only when the manifest says so."""
    p = Path(path)
    if entry is None:
        doc = _manifest(p.parent)
        entry = next((e for e in doc["partitions"] if e["name"] == p.name), None)
        if entry is None:
            raise BookError(f"{p}: a partition the manifest {p.parent / MANIFEST} does not list")
    book = Book.from_arrow(*_read_tables(p, entry))
    _check_accounts(p, entry, book.n_accounts)
    return book


def read_partitioned(folder: str | Path) -> Book:
    """The whole dataset as one in-memory Book (partitions concatenated), every partition
    verified against the manifest (see :func:`read_partition`)."""
    import pyarrow as pa

    doc, plan = _plan(folder)
    tables: dict[str, list[Any]] = {t: [] for t in TABLES}
    for p, entry in plan:
        bal, pos = _read_tables(p, entry)
        _check_accounts(p, entry, _count_accounts(bal.column("account"), pos.column("account")))
        tables["balances"].append(bal)
        tables["positions"].append(pos)
    book = Book.from_arrow(*(pa.concat_tables(t) for t in tables.values()))
    if book.n_accounts != doc["accounts"]:  # an account in two partitions
        raise BookError(
            f"{folder}: holds {book.n_accounts} accounts, the manifest says {doc['accounts']}"
        )
    return book


# ---- the universe, shipped once --------------------------------------------------------
_BUILT: dict[str, Universe] = {}


@dataclass(frozen=True)
class UniverseSpec:
    """A picklable universe (the compiled tables are not picklable): the dataclass fields,
    rebuilt once per worker process and cached under ``token``."""

    token: str
    assets: tuple[Any, ...]
    markets: tuple[Any, ...]
    underlying_prices: dict[str, float]
    valuation_date: Any
    portfolio: Any

    @classmethod
    def of(cls, u: Universe) -> UniverseSpec:
        return cls(
            uuid.uuid4().hex,
            tuple(u.assets),
            tuple(u.markets),
            dict(u.underlying_prices),
            u.valuation_date,
            u.portfolio,
        )

    def build(self) -> Universe:
        u = _BUILT.get(self.token)
        if u is None:
            u = Universe(
                self.assets,
                self.markets,
                self.underlying_prices,
                valuation_date=self.valuation_date,
                portfolio=self.portfolio,
            )
            _BUILT[self.token] = u
        return u


def _broadcast(client: Client, universe: Universe) -> Any:
    if not isinstance(universe, Universe):
        raise ConfigError(f"universe: expected Universe, got {type(universe).__name__}")
    return client.scatter(UniverseSpec.of(universe), broadcast=True)


def _threads() -> int:
    """The Dask worker's thread count (the engine's pool size on that worker)."""
    try:
        from distributed import get_worker

        return max(int(get_worker().state.nthreads), 1)
    except (ImportError, ValueError, AttributeError):
        return 1


# ---- exact sums ------------------------------------------------------------------------
# Every finite float64 is M·2^E with |M| < 2^53 and E ≥ -1126; Σ M·2^(E + SHIFT) is an exact
# integer. Adding those integers across partitions and dividing by 2^SHIFT once rounds the
# exact sum correctly (Python's int / int), which is what math.fsum returns.
_SHIFT = 1126
_EXPONENTS = 2100
_CHUNK = 1 << 24


@dataclass(frozen=True)
class ExactSum:
    """An exact sum of float64 values: an integer of 2^-1126 units, plus the sum of any
    non-finite values (inf / nan), which then decides the result."""

    units: int = 0
    special: float = 0.0

    def __add__(self, other: ExactSum) -> ExactSum:
        return ExactSum(self.units + other.units, self.special + other.special)

    def __float__(self) -> float:
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        try:
            return self.units / (1 << _SHIFT)
        except OverflowError:
            return math.inf if self.units > 0 else -math.inf

    @classmethod
    def of(cls, values: Any) -> ExactSum:
        x = np.ascontiguousarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(x)
        special = 0.0
        if not finite.all():
            special = float(np.sum(x[~finite]))
            x = x[finite]
        units = 0
        for start in range(0, len(x), _CHUNK):
            m, e = np.frexp(x[start : start + _CHUNK])
            mant = (m * 2.0**53).astype(np.int64)
            exp = e.astype(np.int64) + (_SHIFT - 53)
            # 27-bit high and 26-bit low halves: per-exponent sums of ≤ 2^24 of them stay
            # below 2^53, so bincount's float64 accumulation is exact.
            hi = (mant >> 26).astype(np.float64)
            lo = (mant & ((1 << 26) - 1)).astype(np.float64)
            hs = np.bincount(exp, weights=hi, minlength=_EXPONENTS)
            ls = np.bincount(exp, weights=lo, minlength=_EXPONENTS)
            for k in np.flatnonzero((hs != 0) | (ls != 0)).tolist():
                units += ((int(hs[k]) << 26) + int(ls[k])) << k
        return cls(units, special)


def _histogram(ratio: np.ndarray) -> np.ndarray:
    edges = np.array(RATIO_BINS[:-1])
    idx = np.searchsorted(edges, ratio, side="right") - 1
    return np.bincount(np.clip(idx, 0, len(edges) - 1), minlength=len(edges)).astype(np.int64)


def _riskiest(account: np.ndarray, ratio: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest margin ratios, ties by ascending account id."""
    order = np.lexsort((account, -ratio))[:k]
    return account[order], ratio[order]


def partial_summary(result: MarginResult, top_k: int = 10) -> dict[str, Any]:
    """The mergeable summary of one partition's (or a whole book's) margin result."""
    ratio = result.margin_ratio
    finite = ratio[np.isfinite(ratio)]
    shortfall = np.maximum(result.mm - result.adj_equity_maint, 0.0)
    top_a, top_r = _riskiest(result.account, ratio, top_k)
    return {
        "accounts": len(result),
        "liquidatable": int(result.liquidatable.sum()),
        "bankrupt": int(result.bankrupt.sum()),
        "sums": {f: ExactSum.of(result[f]) for f in SUM_FIELDS}
        | {"maint_shortfall": ExactSum.of(shortfall)},
        "max_margin_ratio": float(finite.max()) if len(finite) else 0.0,
        "accounts_exhausted": int(np.isinf(ratio).sum()),
        "histogram": _histogram(ratio),
        "top_account": top_a,
        "top_ratio": top_r,
    }


def merge_summaries(parts: Sequence[Mapping[str, Any]], top_k: int = 10) -> ShardedMargin:
    """Merges partial summaries exactly (the order of ``parts`` does not matter)."""
    sums = {f: ExactSum() for f in (*SUM_FIELDS, "maint_shortfall")}
    hist = np.zeros(len(RATIO_BINS) - 1, dtype=np.int64)
    counts = {"accounts": 0, "liquidatable": 0, "bankrupt": 0, "accounts_exhausted": 0}
    max_ratio = 0.0
    top_a, top_r = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for p in parts:
        for k in counts:
            counts[k] += int(p[k])
        for f in sums:
            sums[f] = sums[f] + p["sums"][f]
        hist += p["histogram"]
        max_ratio = max(max_ratio, p["max_margin_ratio"])
        top_a.append(p["top_account"])
        top_r.append(p["top_ratio"])
    a, r = _riskiest(np.concatenate(top_a), np.concatenate(top_r), top_k)
    # The keys and order of MarginResult.summary().
    summary: dict[str, Any] = {
        "accounts": counts["accounts"],
        "liquidatable": counts["liquidatable"],
        "bankrupt": counts["bankrupt"],
        **{f: float(sums[f]) for f in (*SUM_FIELDS, "maint_shortfall")},
        "max_margin_ratio": max_ratio,
        "accounts_exhausted": counts["accounts_exhausted"],
    }
    histogram = Table(
        {
            "ratio_from": np.array(RATIO_BINS[:-1]),
            "ratio_to": np.array(RATIO_BINS[1:]),
            "accounts": hist,
        }
    )
    return ShardedMargin(summary, histogram, Table({"account": a, "margin_ratio": r}), len(parts))


def summarize(result: MarginResult, top_k: int = 10) -> ShardedMargin:
    """The exact summary of an unsharded result: what :func:`evaluate` returns for the same
    accounts under any partitioning."""
    return merge_summaries([partial_summary(result, top_k)], top_k)


@dataclass(frozen=True)
class ShardedMargin:
    """Merged margin summary: ``summary`` (the keys of ``MarginResult.summary()``, sums
    exactly rounded), margin-ratio ``histogram``, the ``top`` riskiest accounts."""

    summary: dict[str, Any]
    histogram: Table
    top: Table
    partitions: int


# ---- evaluate and stress ---------------------------------------------------------------
def _map_partitions(
    client: Client,
    plan: list[tuple[Path, dict[str, Any]]],
    what: str,
    task: Any,
    spec: UniverseSpec,
    *args: Any,
) -> list[Any]:
    """``task(spec, path, manifest entry, *args)`` on every planned partition, one Dask task
    each (keys ``cm-{what}-part-NNNNN-…``), gathered in partition order."""
    futures = [
        client.submit(
            task, spec, str(p), entry, *args, key=f"cm-{what}-{p.name}-{uuid.uuid4().hex[:8]}"
        )
        for p, entry in plan
    ]
    return list(client.gather(futures))


def _evaluate_part(
    spec: UniverseSpec,
    path: str,
    entry: dict[str, Any],
    prices: tuple[np.ndarray, np.ndarray],
    out: str | None,
    top_k: int,
) -> dict[str, Any]:
    u = spec.build()
    book = read_partition(path, entry)  # verified here, where it is read
    r = Engine(u, threads=_threads()).evaluate(book, prices=_aligned(prices))
    if out is not None:
        target = Path(out) / Path(path).name
        target.mkdir(parents=True, exist_ok=True)
        r.to_parquet(target / "margin.parquet")
    return partial_summary(r, top_k)


def evaluate(
    client: Client,
    folder: str | Path,
    universe: Universe,
    prices: PriceOverrides = None,
    out: str | Path | None = None,
    top_k: int = 10,
) -> ShardedMargin:
    """Margin of every account of a partitioned dataset, one task per partition; with
    ``out``, each partition's MarginResult goes to ``out/part-NNNNN/margin.parquet``.
    Exactly the manifest's partitions are scheduled, and each task verifies the partition
    it reads (:func:`read_partition`): a missing, extra or altered partition raises
    :class:`BookError`."""
    doc, plan = _plan(folder)
    spec = _broadcast(client, universe)
    px = resolve(universe, prices)
    o = None if out is None else str(out)
    parts = _map_partitions(client, plan, "margin", _evaluate_part, spec, px, o, top_k)
    merged = merge_summaries(parts, top_k)
    _check_total(folder, doc, merged.summary["accounts"])
    return merged


def _stress_part(
    spec: UniverseSpec,
    path: str,
    entry: dict[str, Any],
    names: list[str],
    prices: list[tuple[np.ndarray, np.ndarray]],
    out: str | None,
) -> dict[str, Any]:
    u = spec.build()
    book = read_partition(path, entry)  # verified here, where it is read
    engine = Engine(u, threads=_threads())
    rows: dict[str, Any] = {
        "accounts": book.n_accounts,
        "liquidatable": [],
        "bankrupt": [],
        "shortfall": [],
        "bad_debt": [],
    }
    matrix: dict[str, np.ndarray] = {"account": book.accounts}
    for name, px in zip(names, _aligned(prices), strict=True):
        r = engine.evaluate(book, prices=px)
        rows["liquidatable"].append(int(r.liquidatable.sum()))
        rows["bankrupt"].append(int(r.bankrupt.sum()))
        rows["shortfall"].append(ExactSum.of(np.maximum(r.mm - r.adj_equity_maint, 0.0)))
        rows["bad_debt"].append(ExactSum.of(np.maximum(-r.equity, 0.0)))
        matrix[name] = r.adj_equity_maint - r.mm
    if out is not None:
        target = Path(out) / Path(path).name
        target.mkdir(parents=True, exist_ok=True)
        Table(matrix).to_parquet(target / "stress_matrix.parquet")
    return rows


def stress(
    client: Client,
    folder: str | Path,
    universe: Universe,
    scenarios: Mapping[str, Scenario],
    insurance_fund: float = 0.0,
    out: str | Path | None = None,
) -> Table:
    """Every account of a partitioned dataset under every scenario: the per-scenario table of
    ``Engine.stress`` (scenario, liquidatable, bankrupt, shortfall, bad_debt, insurance_fund,
    fund_exhausted), sums exactly rounded. With ``out``, each partition's accounts ×
    scenarios matrix of adj_equity_maint − mm goes to ``out/part-NNNNN/stress_matrix.parquet``."""
    if not isinstance(scenarios, Mapping):
        raise ConfigError("scenarios: expected a mapping name → moves", field="scenarios")
    fund = float(insurance_fund)
    if not math.isfinite(fund) or fund < 0:
        raise ConfigError(f"insurance_fund: {insurance_fund} must be finite and ≥ 0")
    names = [str(n) for n in scenarios]
    prices = [
        scenario_prices(universe, n, m)[:2] for n, m in zip(names, scenarios.values(), strict=True)
    ]
    doc, plan = _plan(folder)
    spec = _broadcast(client, universe)
    o = None if out is None else str(out)
    parts = _map_partitions(client, plan, "stress", _stress_part, spec, names, prices, o)
    _check_total(folder, doc, sum(p["accounts"] for p in parts))
    n = len(names)
    liq = np.array([sum(p["liquidatable"][s] for p in parts) for s in range(n)], dtype=np.int64)
    bank = np.array([sum(p["bankrupt"][s] for p in parts) for s in range(n)], dtype=np.int64)
    short = [sum((p["shortfall"][s] for p in parts), ExactSum()) for s in range(n)]
    bad = np.array([float(sum((p["bad_debt"][s] for p in parts), ExactSum())) for s in range(n)])
    return Table(
        {
            "scenario": np.array(names or [""], dtype=str)[:n],
            "liquidatable": liq,
            "bankrupt": bank,
            "shortfall": np.array([float(x) for x in short]),
            "bad_debt": bad,
            "insurance_fund": np.full(n, fund),
            "fund_exhausted": bad > fund,
        }
    )


# ---- the cascade -----------------------------------------------------------------------
class ShardActor:
    """One partition of a cascade, held on a worker (a Dask actor): its book in the ledger
    and the calls of the step protocol, under the cascade's ``rules``."""

    def __init__(
        self,
        spec: UniverseSpec,
        path: str,
        rules: CascadeRules,
        entry: dict[str, Any] | None = None,
    ) -> None:
        self.universe = spec.build()
        book = read_partition(path, entry)  # verified here, where it is read
        self.accounts = book.n_accounts
        native = _core.Engine(self.universe.compiled, 1)
        self.shard = native.cascade_shard(book.grouping(self.universe), _aligned(rules))

    def n_accounts(self) -> int:
        return int(self.accounts)

    def holdings(self) -> list[int]:
        return list(self.shard.holdings())

    def gross_holdings(self) -> list[int]:
        return list(self.shard.gross_holdings())

    def select(self, assets: np.ndarray, marks: np.ndarray) -> dict[str, Any]:
        return dict(self.shard.select(_aligned((assets, marks))))

    def settle(
        self, assets: np.ndarray, marks: np.ndarray, chosen: np.ndarray, price: np.ndarray
    ) -> dict[str, Any]:
        prices, chosen, price = _aligned(((assets, marks), chosen, price))
        return dict(self.shard.settle(prices, chosen, price))

    def counterparties(
        self, assets: np.ndarray, marks: np.ndarray, market: int, side: float, cover: float
    ) -> dict[str, Any]:
        return dict(self.shard.counterparties(_aligned((assets, marks)), market, side, cover))

    def deleverage(
        self, assets: np.ndarray, marks: np.ndarray, market: int, closes: dict[str, Any]
    ) -> dict[str, Any]:
        prices, closes = _aligned(((assets, marks), closes))
        return dict(self.shard.deleverage(prices, market, closes))

    def final_book(self, out: str | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bal, pos = self.shard.final_book()
        if out is None:
            return dict(bal), dict(pos)
        from crossmargin.io import write_book

        write_book(Book.from_arrays(bal, pos), out, self.universe)
        return None


def _aligned(x: Any) -> Any:
    """Arrays that crossed the wire as aligned, contiguous copies (Dask may hand back
    buffers at any offset; the core reads slices in place)."""
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True, order="C")
    if isinstance(x, dict):
        return {k: _aligned(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_aligned(v) for v in x)
    if isinstance(x, CascadeRules):
        return dataclasses.replace(
            x, step_asset_prices=_aligned(x.step_asset_prices), step_marks=_aligned(x.step_marks)
        )
    return x


def _all(futures: Sequence[Any]) -> list[Any]:
    return [_aligned(f.result()) for f in futures]


def cascade(
    client: Client,
    folder: str | Path,
    universe: Universe,
    config: CascadeConfig,
    out: str | Path | None = None,
) -> CascadeResult:
    """``Engine.cascade`` over a partitioned dataset, as bulk-synchronous rounds: identical
    events, rounds, totals and final book for any number of partitions. With ``out``, each
    partition's final book is written to ``out/part-NNNNN/cascade_final/`` and the result's
    ``final_book`` is empty (a billion-account book stays on the workers)."""
    u = universe
    rules = CascadeRules.of(u, config)
    engine = _core.Engine(u.compiled, 1)
    driver = engine.cascade_driver(rules)
    doc, plan = _plan(folder)
    parts = [p for p, _ in plan]
    spec = _broadcast(client, u)
    workers = sorted(client.scheduler_info()["workers"])
    actors = _all(
        [
            client.submit(
                ShardActor,
                spec,
                str(p),
                rules,
                entry,
                actor=True,
                workers=[workers[i % len(workers)]] if workers else None,
                key=f"cm-shard-{p.name}-{uuid.uuid4().hex[:8]}",
            )
            for i, (p, entry) in enumerate(plan)
        ]
    )
    _check_total(folder, doc, sum(_all([a.n_accounts() for a in actors])))
    driver.check_capacity(_all([a.gross_holdings() for a in actors]))
    totals_before = list(driver.totals(_all([a.holdings() for a in actors])))
    while True:
        assets, marks = driver.round_prices()
        cands = _all([a.select(assets, marks) for a in actors])
        what, chosen, price = driver.plan(cands)
        if what == "next_step":
            continue
        if what == "done" or chosen is None or price is None:
            break
        driver.settled(
            _all([a.settle(assets, marks, c, price) for a, c in zip(actors, chosen, strict=True)])
        )
        while (d := driver.deficit()) is not None:
            k, side, cover = d
            closes = driver.plan_deleverage(
                _all([a.counterparties(assets, marks, k, side, cover) for a in actors])
            )
            driver.deleveraged(
                _all(
                    [a.deleverage(assets, marks, k, c) for a, c in zip(actors, closes, strict=True)]
                )
            )
        driver.end_round()
    totals_after = list(driver.totals(_all([a.holdings() for a in actors])))
    out_d = driver.finish()
    o = None if out is None else Path(out)
    books = _all(
        [
            a.final_book(None if o is None else str(o / p.name / "cascade_final"))
            for a, p in zip(actors, parts, strict=True)
        ]
    )
    final_book = _merge_final(books) if o is None else Book.from_arrays()
    return assemble(u, out_d, (totals_before, totals_after), final_book, engine)


def _check_total(folder: str | Path, doc: Mapping[str, Any], accounts: int) -> None:
    """The driver's last check: the workers' partitions add up to the manifest's accounts."""
    if accounts != doc["accounts"]:
        raise BookError(
            f"{folder}: the partitions read hold {accounts} accounts, the manifest says "
            f"{doc['accounts']}"
        )


def _merge_final(books: list[tuple[dict[str, Any], dict[str, Any]] | None]) -> Book:
    """Shards' final books as one, rows in ascending account (the single-process order)."""
    tables = []
    for which in (0, 1):
        cols = [b[which] for b in books if b is not None]
        merged = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]} if cols else {}
        if merged:
            order = np.argsort(merged["account"], kind="stable")
            merged = {k: v[order] for k, v in merged.items()}
        tables.append(merged)
    return Book.from_arrays(tables[0] or None, tables[1] or None)


# ---- clients ---------------------------------------------------------------------------
@contextmanager
def connect(
    scheduler: str | None = None, local_cluster: int | None = None, threads_per_worker: int = 1
) -> Iterator[Client]:
    """A Dask client: to ``scheduler`` (an address), or to a LocalCluster of
    ``local_cluster`` worker processes started (and stopped) here."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "crossmargin.distributed needs dask.distributed: pip install 'crossmargin[distributed]'"
        ) from None
    if (scheduler is None) == (local_cluster is None):
        raise ConfigError("give a scheduler address or a local cluster size (one of them)")
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if not isinstance(local_cluster, int) or local_cluster < 1:
        raise ConfigError(f"--local-cluster: {local_cluster!r} must be ≥ 1 worker")
    with (
        LocalCluster(
            n_workers=local_cluster,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


__all__ = [
    "RATIO_BINS",
    "ExactSum",
    "PartitionWriter",
    "ShardActor",
    "ShardedMargin",
    "UniverseSpec",
    "cascade",
    "connect",
    "evaluate",
    "is_partitioned",
    "merge_summaries",
    "partial_summary",
    "partition_of",
    "partitions",
    "read_partition",
    "read_partitioned",
    "stress",
    "summarize",
    "write_partitioned",
]
