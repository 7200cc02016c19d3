"""Partitioned books verify against their manifest on every read (issue "Safe to automate",
"Nothing lost"): a missing, short, altered or extra partition, or an edited, corrupt, missing
or old-format manifest, is a BookError naming what disagrees, never a smaller book. The Dask
read paths are tested in test_distributed.py with the same damages."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import crossmargin as cm
import pyarrow.parquet as pq
import pytest
from crossmargin import distributed as cmd
from crossmargin.cli import main
from crossmargin.distributed import sharded
from crossmargin.synth import generate

N = 3


@pytest.fixture(scope="module")
def universe() -> cm.Universe:
    return cm.Universe.demo()


@pytest.fixture(scope="module")
def book(universe: cm.Universe) -> cm.Book:
    return generate(universe, n_accounts=600, seed=21)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, book, universe) -> Path:
    return cmd.write_partitioned(book, universe, tmp_path_factory.mktemp("pristine") / "b", N)


@pytest.fixture
def dataset(pristine, tmp_path) -> Path:
    """A copy of the pristine dataset, to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "book"))


def _load(folder: Path) -> dict:
    return json.loads((folder / cmd.MANIFEST).read_text())


def _save(folder: Path, doc: dict, reseal: bool = False) -> None:
    if reseal:  # as a tool that knows the format would: only the data can tell
        doc["manifest_sha256"] = sharded._seal(doc)
    (folder / cmd.MANIFEST).write_text(json.dumps(doc, indent=2))


def damage(folder: Path, how: str) -> str:
    """Damages a dataset of N partitions in place; returns a pattern the BookError matches."""
    part = folder / "part-00001"
    m = folder / cmd.MANIFEST
    doc = _load(folder)
    if how == "partition deleted":
        shutil.rmtree(part)
        return r"part-00001: partition missing"
    if how == "partition truncated":
        f = part / "balances.parquet"
        t = pq.read_table(f)
        pq.write_table(t.slice(0, t.num_rows - 5), f)
        return rf"part-00001/balances.parquet: holds {t.num_rows - 5} rows .*says {t.num_rows} "
    if how == "file deleted":
        (part / "positions.parquet").unlink()
        return r"part-00001/positions.parquet: missing"
    if how == "file altered":  # same size, one byte flipped
        f = part / "positions.parquet"
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
        return r"part-00001/positions.parquet: .*sha256 differs"
    if how == "count edited":
        doc["n_partitions"] = N - 1
        _save(folder, doc)
        return rf"n_partitions is {N - 1} but the manifest lists {N} partitions"
    if how == "stray partition":
        shutil.copytree(part, folder / f"part-{N:05d}")
        return rf"part-{N:05d}: a partition the manifest does not list"
    if how == "manifest corrupt":
        m.write_text(m.read_text()[:300])
        return r"_dataset.json: corrupt manifest \(not valid JSON"
    if how == "manifest missing":
        m.unlink()
        return r"not a partitioned book \(_dataset.json is missing\)"
    if how == "manifest of the old format":
        old = ("format", "n_partitions", "partitioning", "accounts")
        _save(folder, {k: doc[k] for k in old})
        return r"earlier crossmargin.*rewrite the dataset"
    if how == "partition dropped from the manifest":  # count and totals kept consistent
        e = doc["partitions"].pop()
        doc["n_partitions"] -= 1
        doc["accounts"] -= e["accounts"]
        for t in ("balances", "positions"):
            doc["rows"][t] -= e["files"][f"{t}.parquet"]["rows"]
        _save(folder, doc)
        return r"manifest_sha256\) does not match its content"
    if how == "accounts edited":
        doc["partitions"][1]["accounts"] += 1
        doc["accounts"] += 1
        _save(folder, doc, reseal=True)
        return r"part-00001: holds \d+ accounts, the manifest says \d+"
    if how == "rows edited":
        doc["partitions"][1]["files"]["balances.parquet"]["rows"] += 1
        doc["rows"]["balances"] += 1
        _save(folder, doc, reseal=True)
        return r"part-00001/balances.parquet: holds \d+ rows, the manifest says \d+"
    raise AssertionError(how)


DAMAGES = (
    "partition deleted",
    "partition truncated",
    "file deleted",
    "file altered",
    "count edited",
    "stray partition",
    "manifest corrupt",
    "manifest missing",
    "manifest of the old format",
    "partition dropped from the manifest",
    "accounts edited",
    "rows edited",
)


# ---- the manifest ------------------------------------------------------------------------
def test_the_manifest_records_every_partitions_rows_accounts_and_checksums(pristine, book):
    doc = _load(pristine)
    assert doc["format_version"] == cmd.FORMAT_VERSION == 2
    assert doc["n_partitions"] == len(doc["partitions"]) == N
    assert doc["accounts"] == book.n_accounts == sum(e["accounts"] for e in doc["partitions"])
    assert doc["rows"] == {
        "balances": len(book.balances["qty"]),
        "positions": len(book.positions["qty"]),
    }
    for i, e in enumerate(doc["partitions"]):
        assert e["name"] == f"part-{i:05d}"
        for t in ("balances", "positions"):
            f = pristine / e["name"] / f"{t}.parquet"
            spec = e["files"][f.name]
            assert spec["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
            assert spec["bytes"] == f.stat().st_size
            assert spec["rows"] == pq.read_metadata(f).num_rows
        assert e["accounts"] == cmd.read_partition(pristine / e["name"]).n_accounts
    assert cmd.read_partitioned(pristine).n_accounts == book.n_accounts


# ---- every damage is refused, naming what disagrees --------------------------------------
@pytest.mark.parametrize("how", DAMAGES)
def test_read_partitioned_refuses_a_damaged_dataset(dataset, how):
    pattern = damage(dataset, how)
    assert cmd.is_partitioned(dataset)  # even without its manifest: then reading says so
    with pytest.raises(cm.BookError, match=pattern):
        cmd.read_partitioned(dataset)


@pytest.mark.parametrize("how", [d for d in DAMAGES if d != "stray partition"])
def test_read_partition_verifies_the_partition_it_reads(dataset, how):
    pattern = damage(dataset, how)
    with pytest.raises(cm.BookError, match=pattern):
        cmd.read_partition(dataset / "part-00001")


def test_the_partition_listing_is_checked(dataset):
    damage(dataset, "stray partition")
    with pytest.raises(cm.BookError, match="part-00003: a partition the manifest does not"):
        cmd.partitions(dataset)


def test_the_cli_exits_2_with_one_line_naming_the_partition(dataset, tmp_path, capsys):
    damage(dataset, "partition truncated")
    with pytest.raises(SystemExit) as e:
        main(["margin", str(dataset), "--universe", "demo", "-o", str(tmp_path / "out"), "-q"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "part-00001/balances.parquet: holds" in err


# ---- partitions without accounts, and writers that fail ----------------------------------
def test_a_partition_without_accounts_is_written_recorded_and_verified(universe, tmp_path):
    one = cm.Book.from_arrays({"account": [7], "asset": ["USDT"], "qty": [1.0]})
    folder = cmd.write_partitioned(one, universe, tmp_path / "b", 4)
    doc = _load(folder)
    assert sorted(e["accounts"] for e in doc["partitions"]) == [0, 0, 0, 1]
    for e in doc["partitions"]:
        for t in ("balances", "positions"):
            assert (folder / e["name"] / f"{t}.parquet").is_file()
    assert cmd.read_partitioned(folder).n_accounts == 1
    assert sum(cmd.read_partition(p).n_accounts for p in cmd.partitions(folder)) == 1
    # A missing partition is an error even where the manifest says it held nothing.
    empty = next(e["name"] for e in doc["partitions"] if e["accounts"] == 0)
    shutil.rmtree(folder / empty)
    with pytest.raises(cm.BookError, match=f"{empty}: partition missing"):
        cmd.read_partitioned(folder)


def test_a_writer_given_no_book_writes_empty_partitions(universe, tmp_path):
    with cmd.PartitionWriter(tmp_path / "b", universe, 2):
        pass
    assert cmd.read_partitioned(tmp_path / "b").n_accounts == 0
    assert [e["accounts"] for e in _load(tmp_path / "b")["partitions"]] == [0, 0]


def test_an_interrupted_writer_leaves_no_manifest(universe, book, tmp_path):
    folder = tmp_path / "b"
    with pytest.raises(RuntimeError), cmd.PartitionWriter(folder, universe, N) as w:
        w.write(book)
        raise RuntimeError("interrupted")
    assert not (folder / cmd.MANIFEST).exists()
    with pytest.raises(cm.BookError, match=r"_dataset\.json is missing"):
        cmd.read_partitioned(folder)


def test_a_refused_book_leaves_the_dataset_without_a_manifest(universe, book, tmp_path):
    folder = tmp_path / "b"
    symbols = cm.Book.from_arrays({"account": [10**9], "asset": ["USDT"], "qty": [1.0]})
    w = cmd.PartitionWriter(folder, universe, N)
    w.write(book)  # universe indices
    with pytest.raises(cm.BookError, match="encoded differently"):
        w.write(symbols)
    with pytest.raises(cm.BookError, match="no manifest written"):
        w.close()
    assert not (folder / cmd.MANIFEST).exists()


def test_writing_over_a_dataset_of_more_partitions_is_refused(dataset, universe, book):
    with pytest.raises(cm.BookError, match="part-00002: the folder already holds a partition"):
        cmd.write_partitioned(book, universe, dataset, N - 1)
    # Same partition count: the files are replaced and a new manifest describes them.
    cmd.write_partitioned(book, universe, dataset, N)
    assert cmd.read_partitioned(dataset).n_accounts == book.n_accounts
