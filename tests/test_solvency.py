"""Solvency and the Merkle-sum proof of liabilities (docs/MODEL.md, "Solvency" and
"Money").

The tree is Maxwell's Merkle-sum tree with the fix of Hu, Zhang & Guo ("Breaking the
Binding", https://eprint.iacr.org/2018/1139): every node hashes both child sums. The root
computed by the Rust core equals the plain-Python (hashlib) reference on every book; every
account's proof verifies; every tampering is rejected.
"""

from __future__ import annotations

import dataclasses
import json
import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin.reference import solvency as ref
from crossmargin.risk.solvency import InclusionProof, verify
from crossmargin.testing import universe_and_book
from helpers import book
from hypothesis import given, settings
from hypothesis import strategies as st

SEED = b"test seed: keep secret in production"


def small_book() -> cm.Book:
    return book(
        bal=[
            (1, "USDT", 10_000.0),
            (2, "BTC", 1.0),
            (2, "USDT", -10_000.0),  # a borrow netted against the account's BTC
            (3, "USDT", 100.0),
            (4, "ETH", 5.0),
            (5, "USDC", 250.0),
        ],
        pos=[
            (3, "BTCUSDT", 1.0, 51_000.0),  # loses 1,000: account 3 is under water
            (4, "BTCUSDT", -1.0, 49_000.0, 500.0),  # isolated: margin 500, uPnL −1,000
        ],
    )


def test_liabilities_are_net_equity_floored_at_zero(small):
    sv = cm.Engine(small).solvency(small_book(), {"USDT": 30_000.0, "BTC": 1.0}, seed=SEED)
    acc = sv.accounts.to_pandas().set_index("account")
    assert acc.liability.to_dict() == {1: 10_000.0, 2: 40_000.0, 3: 0.0, 4: 9_500.0, 5: 250.0}
    assert acc.equity[3] == -900.0
    assert sv.negative_equity_accounts == 1 and sv.negative_equity_deficit == 900.0
    assert sv.total_liabilities == 59_750.0
    assert sv.total_liabilities_minor == 5_975_000_000_000
    # Reserves at the maintenance weight (haircut): 30,000 × 1 + 50,000 × 0.95.
    assert sv.coverage == pytest.approx((30_000.0 + 47_500.0) / 59_750.0)
    assets = sv.assets.to_pandas().set_index("asset")
    # USDT: claims 10,000 (account 1); debts 10,000 (2's borrow) + 900 (3: 100 − 1,000)
    # + 500 (4: isolated 500 − 1,000, netted by its 5 ETH).
    assert assets.claims["USDT"] == 10_000.0 and assets.debts["USDT"] == 11_400.0
    assert assets.net_liabilities["USDT"] == -1_400.0
    assert math.isinf(assets.reserve_ratio["USDT"])
    assert assets.reserve_ratio["BTC"] == 1.0
    assert assets.reserve_ratio["ETH"] == 0.0  # 5 ETH owed, none held


def test_stress_moves_liabilities_and_reserves(small):
    eng = cm.Engine(small)
    sv = eng.solvency(small_book(), {"BTC": 2.0}, stress={"BTC": -0.5}, seed=SEED)
    # BTC reserves halve; account 2 (1 BTC − 10,000 USDT) drops from 40,000 to 15,000.
    assert sv.coverage_stressed == pytest.approx(
        2.0 * 25_000.0 * 0.95 / sv.total_liabilities_stressed
    )
    assert sv.coverage_stressed < sv.coverage
    want = eng.solvency(small_book(), {"BTC": 2.0}, prices={"BTC": 25_000.0}, seed=SEED)
    assert sv.total_liabilities_stressed == want.total_liabilities
    with pytest.raises(cm.PriceError):
        eng.solvency(small_book(), stress={"BTC": -1.5})
    with pytest.raises(cm.PriceError):
        eng.solvency(small_book(), stress={"XYZ": -0.1})


def test_reserves_are_checked(small):
    eng = cm.Engine(small)
    with pytest.raises(cm.ConfigError, match="unknown asset"):
        eng.solvency(small_book(), {"DOGE": 1.0})
    with pytest.raises(cm.ConfigError, match="exchange_assets\\[USDT\\]"):
        eng.solvency(small_book(), {"USDT": -1.0})


def test_every_account_proves_its_liability_and_the_proof_round_trips_json(small):
    sv = cm.Engine(small).solvency(small_book(), seed=SEED)
    for account, minor in zip(
        sv.accounts.account.tolist(), sv.accounts.liability_minor.tolist(), strict=True
    ):
        p = sv.proof(account)
        assert p.liability == minor and p.account == account
        assert verify(p, sv.root_hash, sv.total_liabilities_minor)
        text = p.to_json()
        assert verify(text, sv.root_hash, sv.total_liabilities_minor)
        assert InclusionProof.from_json(text) == p
        assert verify(json.loads(text), bytes.fromhex(sv.root_hash), sv.total_liabilities_minor)
    with pytest.raises(KeyError):
        sv.proof(42)


def tamperings(p: InclusionProof) -> list[tuple[str, InclusionProof]]:
    r = dataclasses.replace
    out = [
        ("liability + 1", r(p, liability=p.liability + 1)),
        ("liability − 1", r(p, liability=p.liability - 1)),
        ("negative liability", r(p, liability=-1)),
        ("liability ≥ 2^128", r(p, liability=1 << 128)),
        ("account", r(p, account=p.account + 1)),
        ("nonce", r(p, nonce=("0" if p.nonce[0] != "0" else "1") + p.nonce[1:])),
        ("short nonce", r(p, nonce=p.nonce[:-2])),
        ("index flipped", r(p, index=p.index ^ 1)),
        ("index beyond path", r(p, index=p.index + (1 << len(p.path)))),
        ("negative index", r(p, index=-1)),
        ("path dropped", r(p, path=p.path[:-1])),
        ("path extended", r(p, path=(*p.path, ("00" * 32, 0)))),
        ("bool liability", r(p, liability=True)),
        ("float liability", r(p, liability=float(p.liability))),
    ]
    for s, (h, v) in enumerate(p.path):

        def at(step, path=p.path, s=s):
            return tuple(step if k == s else x for k, x in enumerate(path))

        flipped = h[:-1] + ("f" if h[-1] != "f" else "e")
        out += [
            (f"sum {s} + 1", r(p, path=at((h, v + 1)))),
            (f"negative sum {s}", r(p, path=at((h, -1)))),
            (f"sum {s} overflowing", r(p, path=at((h, (1 << 128) - 1)))),
            (f"hash {s}", r(p, path=at((flipped, v)))),
            (f"hash {s} not hex", r(p, path=at(("zz" * 32, v)))),
        ]
        if v > 0:
            # Move value from the sibling into the leaf: the total is unchanged, the hash not.
            out.append((f"value moved {s}", r(p, path=at((h, v - 1)), liability=p.liability + 1)))
        if s + 1 < len(p.path) and p.path[s] != p.path[s + 1]:
            swapped = list(p.path)
            swapped[s], swapped[s + 1] = swapped[s + 1], swapped[s]
            out.append((f"steps {s}, {s + 1} swapped", r(p, path=tuple(swapped))))
    return out


def test_every_tampering_of_a_proof_is_rejected(small):
    sv = cm.Engine(small).solvency(small_book(), seed=SEED)
    root, total = sv.root_hash, sv.total_liabilities_minor
    for account in sv.accounts.account.tolist():
        p = sv.proof(account)
        assert verify(p, root, total)
        for name, bad in tamperings(p):
            assert not verify(bad, root, total), f"{name} accepted for account {account}"
        assert not verify(p, root, total + 1)
        assert not verify(p, root, total - 1)
        assert not verify(p, root, -total)
        assert not verify(p, root[:-1] + ("0" if root[-1] != "0" else "1"), total)
        assert not verify({"account": account}, root, total)
        assert not verify("not json", root, total)


def test_the_reference_verifier_rejects_the_same_tamperings(small):
    sv = cm.Engine(small).solvency(small_book(), seed=SEED)
    root, total = bytes.fromhex(sv.root_hash), sv.total_liabilities_minor

    def ref_verify(p: InclusionProof) -> bool:
        try:
            path = [(bytes.fromhex(h), s) for h, s in p.path]
            nonce = bytes.fromhex(p.nonce)
        except (ValueError, TypeError):
            return False
        if any(len(h) != 32 for h, _ in path) or len(nonce) != 32:
            return False
        if not all(type(x) is int for x in (p.liability, p.index, *(s for _, s in path))):
            return False
        return ref.verify(p.account, p.liability, nonce, p.index, path, root, total)

    for account in sv.accounts.account.tolist():
        p = sv.proof(account)
        assert ref_verify(p)
        for name, bad in tamperings(p):
            assert not ref_verify(bad), name


def test_the_tree_depends_on_the_seed_but_not_the_total(small):
    eng = cm.Engine(small)
    a = eng.solvency(small_book(), seed=SEED)
    b = eng.solvency(small_book(), seed=b"another seed")
    assert a.root_hash != b.root_hash
    assert a.total_liabilities_minor == b.total_liabilities_minor
    c = eng.solvency(small_book())  # a random seed, kept on the result
    assert len(c.seed) == 32 and verify(c.proof(1), c.root_hash, c.total_liabilities_minor)


def test_empty_book_has_the_zero_root(small):
    sv = cm.Engine(small).solvency(cm.Book.from_arrays(), seed=SEED)
    assert sv.root_hash == "00" * 32 and sv.total_liabilities_minor == 0
    assert math.isinf(sv.coverage)


@settings(max_examples=100, deadline=None)
@given(universe_and_book(), st.binary(min_size=0, max_size=40))
def test_root_hash_and_liabilities_equal_the_reference(case, seed):
    u, rb = case
    b = rb.book(u)
    sv = cm.Engine(u, threads=2).solvency(b, seed=seed)
    _, liability, claims, debts = ref.liabilities(u, b)
    assert sv.accounts.account.tolist() == sorted(liability)
    assert sv.accounts.liability_minor.tolist() == [liability[a] for a in sorted(liability)]
    root, total = ref.merkle_root(liability, seed)
    assert sv.root_hash == root.hex()
    assert sv.total_liabilities_minor == total
    assert sv.assets.claims.tolist() == [c / 100_000_000 for c in claims]
    assert sv.assets.debts.tolist() == [d / 100_000_000 for d in debts]
    if len(b):
        i = len(b) // 2
        p = sv.proof(int(sv.accounts.account[i]))
        assert verify(p, sv.root_hash, total)


@settings(max_examples=30, deadline=None)
@given(universe_and_book())
def test_the_root_does_not_depend_on_threads_or_row_order(case):
    u, rb = case
    one = cm.Engine(u, threads=1).solvency(rb.book(u), seed=SEED)
    order = (np.arange(len(rb.balances["qty"]))[::-1], np.arange(len(rb.positions["qty"]))[::-1])
    two = cm.Engine(u, threads=2).solvency(rb.book(u, order), seed=SEED)
    assert one.root_hash == two.root_hash


def test_equity_agrees_with_evaluate(demo):
    from crossmargin.synth import generate

    b = generate(demo, n_accounts=3_000, seed=11)
    eng = cm.Engine(demo)
    sv = eng.solvency(b, seed=SEED)
    r = eng.evaluate(b)
    np.testing.assert_allclose(sv.accounts.equity, r.equity, rtol=1e-12, atol=1e-6)
    assert sv.negative_equity_accounts == int(r.bankrupt.sum())


def test_an_amount_beyond_the_ledger_names_the_account_and_asset() -> None:
    u = cm.Universe.demo()
    b = cm.Book.from_arrays(
        balances={"account": [5, 6], "asset": ["USDT", "USDT"], "qty": [1.0, 1.0]},
        positions={"account": [6], "market": ["BTCUSDT"], "qty": [1e13], "entry_price": [1.0]},
    )
    with pytest.raises(cm.PriceError, match=r"claims\[USDT\] of account 6"):
        cm.Engine(u).solvency(b, prices={"BTCUSDT": 1e17})
