"""driftpy's own ``DriftUser`` on accounts given as JSON (stdin) → JSON (stdout).

Runs in a virtualenv of its own with a pinned driftpy (it pins numpy < 2; .ci/test makes it),
so the differential test in tests/test_venues.py runs crossmargin and driftpy side by side
without sharing a process. No network: a ``DriftUser`` is given a stand-in client that serves
the snapshot's market accounts and oracle prices, and a stand-in subscription that serves the
account; everything else is driftpy's code.

Input: {"spot": [spot market fields, market index = position], "perp": [perp market fields],
"accounts": [{"spot": [[market_index, signed token amount]], "perp": [[market_index, base
asset amount, quote asset amount]]}]}, raw integers in Drift's units (crossmargin.venues.
drift_universe reads the same snapshot). Output per account:

- ``driftpy``: [total collateral initial, maintenance, margin requirement initial,
  maintenance, can_be_liquidated()] from ``DriftUser.get_total_collateral``,
  ``get_margin_requirement`` and ``can_be_liquidated`` as driftpy ships them;
- ``program``: the same four from the same ``DriftUser`` with driftpy's departures from the
  on-chain program (drift-labs/protocol-v2) replaced by the program's rules — this file
  shows those rules (:func:`program_size_discount`, :func:`program_size_premium`,
  :class:`ProgramUser`).
"""

from __future__ import annotations

import json
import math
import sys
from types import SimpleNamespace

import driftpy.math.margin as margin
from driftpy.constants.numeric_constants import (
    PRICE_PRECISION,
    SPOT_IMF_PRECISION,
    SPOT_WEIGHT_PRECISION,
)
from driftpy.drift_user import DriftUser
from driftpy.math.margin import MarginCategory
from driftpy.math.perp_position import calculate_position_pnl
from driftpy.math.spot_balance import get_strict_token_value
from driftpy.types import (
    ContractType,
    MarginMode,
    MarketStatus,
    OraclePriceData,
    SpotBalanceType,
)

AS_SHIPPED = (
    margin.calculate_size_discount_asset_weight,
    margin.calculate_size_premium_liability_weight,
)
# programs/drift/src/math/constants.rs
MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN = 100 * 10**6
AMM_TO_QUOTE_PRECISION_RATIO = 10**3
SPOT_CUMULATIVE_INTEREST_PRECISION = 10**10


def program_size_discount(size: float, imf_factor: int, asset_weight: int) -> int:
    """programs/drift/src/math/margin.rs ``calculate_size_discount_asset_weight``: the root
    floored (driftpy: ceil of the root, + 1) and the quotient floored (driftpy: rounded up)."""
    if imf_factor == 0:
        return asset_weight
    size_sqrt = math.isqrt(int(size) * 10 + 1)
    imf_numerator = SPOT_IMF_PRECISION + SPOT_IMF_PRECISION // 10
    discounted = (imf_numerator * SPOT_WEIGHT_PRECISION) // (
        SPOT_IMF_PRECISION + size_sqrt * imf_factor // 100_000
    )
    return min(asset_weight, discounted)


def program_size_premium(
    size: float, imf_factor: int, liability_weight: int, precision: int, is_bounded: bool = True
) -> int:
    """margin.rs ``calculate_size_premium_liability_weight``: integer root (driftpy: a float
    root, floored after the product)."""
    if imf_factor == 0:
        return liability_weight
    size_sqrt = math.isqrt(int(abs(size)) * 10 + 1)
    numerator = liability_weight - liability_weight // 5
    premium = numerator + size_sqrt * imf_factor // (100_000 * SPOT_IMF_PRECISION // precision)
    return max(liability_weight, premium) if is_bounded else premium


def trunc_div(a: int, b: int) -> int:
    """Rust's ``/`` on signed integers: toward zero (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


RULES = (
    "size_discount",
    "size_premium",
    "borrow_weighting",
    "upnl_rounding",
    "upnl_size_unit",
    "upnl_cap",
)


class ProgramUser(DriftUser):
    """``DriftUser`` with the program's rule in place of driftpy's for each name in ``rules``
    (the size discount and premium are swapped in driftpy.math.margin by :func:`numbers`)."""

    rules: frozenset = frozenset(RULES)

    def get_spot_liability_value(
        self,
        token_amount,
        strict_oracle_price,
        spot_market_account,
        margin_category=None,
        liquidation_buffer=None,
    ):
        if "borrow_weighting" not in self.rules:
            return super().get_spot_liability_value(
                token_amount,
                strict_oracle_price,
                spot_market_account,
                margin_category,
                liquidation_buffer,
            )
        # state/user.rs simulate_fills_both_sides: token_value × weight / 1e4 on i128, toward
        # zero (driftpy floors the negative product: a unit more liability).
        value = get_strict_token_value(
            token_amount, spot_market_account.decimals, strict_oracle_price
        )
        if margin_category is None:
            return value
        weight = margin.calculate_liability_weight(
            token_amount, spot_market_account, margin_category
        )
        return trunc_div(value * weight, SPOT_WEIGHT_PRECISION)

    def get_unrealized_pnl(
        self, with_funding=False, market_index=None, with_weight_margin_category=None, strict=False
    ):
        """math/margin.rs calculate_perp_position_value_and_pnl with state/perp_market.rs
        get_unrealized_asset_weight ("upnl_rounding": the weight first, then the quote price,
        each toward zero — driftpy converts first and floors; "upnl_size_unit": the discount
        sized by P&L × AMM_TO_QUOTE_PRECISION_RATIO, 1e9 units — driftpy: the converted P&L in
        1e6; "upnl_cap": at most 100 USD at initial — driftpy: no cap). With none of the
        three this is driftpy's own get_unrealized_pnl (checked in :func:`main`)."""
        quote = self.drift_client.get_oracle_price_data_for_spot_market(0).price
        c = with_weight_margin_category
        total = 0
        for position in self.get_user_account().perp_positions:
            if market_index is not None and position.market_index != market_index:
                continue
            market = self.drift_client.get_perp_market_account(position.market_index)
            oracle = self.drift_client.get_oracle_price_data_for_perp_market(position.market_index)
            pnl = int(calculate_position_pnl(market, position, oracle, with_funding))
            converted = pnl * quote // PRICE_PRECISION
            if c is None:
                total += converted
                continue
            size = (
                pnl * AMM_TO_QUOTE_PRECISION_RATIO if "upnl_size_unit" in self.rules else converted
            )

            if "upnl_rounding" in self.rules:
                w = upnl_weight(market, c, size) if pnl > 0 else SPOT_WEIGHT_PRECISION
                x = pnl
                if w != SPOT_WEIGHT_PRECISION:
                    x = trunc_div(x * w, SPOT_WEIGHT_PRECISION)
                if quote != PRICE_PRECISION:
                    x = trunc_div(x * quote, PRICE_PRECISION)
            else:
                x = (
                    converted * upnl_weight(market, c, size) // SPOT_WEIGHT_PRECISION
                    if converted > 0
                    else converted
                )
            if "upnl_cap" in self.rules and c == MarginCategory.INITIAL:
                x = min(x, MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN)
            total += x
        return total


def upnl_weight(market, category: MarginCategory, size: int) -> int:
    """state/perp_market.rs get_unrealized_asset_weight (driftpy: calculate_unrealized_asset_weight)
    for a profit of ``size``."""
    if category == MarginCategory.MAINTENANCE:
        return market.unrealized_pnl_maintenance_asset_weight
    w = market.unrealized_pnl_initial_asset_weight
    return margin.calculate_size_discount_asset_weight(size, market.unrealized_pnl_imf_factor, w)


class Client:
    """What DriftUser asks its client for: market accounts, oracle prices, the state."""

    def __init__(self, spec: dict) -> None:
        self.spot = [spot_account(i, s) for i, s in enumerate(spec["spot"])]
        self.perp = [perp_account(i, p) for i, p in enumerate(spec["perp"])]

    def get_spot_market_account(self, i: int):
        return self.spot[i]

    def get_perp_market_account(self, i: int):
        return self.perp[i]

    def get_oracle_price_data_for_spot_market(self, i: int):
        return oracle(self.spot[i].oracle_price)

    def get_oracle_price_data_for_perp_market(self, i: int):
        return oracle(self.perp[i].oracle_price)

    def get_state_account(self):
        return SimpleNamespace(liquidation_margin_buffer_ratio=0)


def oracle(price: int) -> OraclePriceData:
    return OraclePriceData(
        price=price,
        slot=0,
        confidence=0,
        twap=price,
        twap_confidence=0,
        has_sufficient_number_of_data_points=True,
    )


def scaled(amount: int, decimals: int) -> int:
    """A token amount as a scaled balance at cumulative interest 1 (spot_market.py
    get_token_amount: balance × interest / 10^(19 − decimals))."""
    return abs(amount) * 10 ** (19 - decimals) // SPOT_CUMULATIVE_INTEREST_PRECISION


def spot_account(i: int, s: dict):
    return SimpleNamespace(
        market_index=i,
        decimals=s["decimals"],
        oracle_price=s["oracle_price"],
        initial_asset_weight=s["initial_asset_weight"],
        maintenance_asset_weight=s["maintenance_asset_weight"],
        initial_liability_weight=s["initial_liability_weight"],
        maintenance_liability_weight=s["maintenance_liability_weight"],
        imf_factor=s["imf_factor"],
        scale_initial_asset_weight_start=s.get("scale_initial_asset_weight_start", 0),
        deposit_balance=scaled(s.get("deposits", 0), s["decimals"]),
        cumulative_deposit_interest=SPOT_CUMULATIVE_INTEREST_PRECISION,
        cumulative_borrow_interest=SPOT_CUMULATIVE_INTEREST_PRECISION,
        historical_oracle_data=SimpleNamespace(last_oracle_price_twap5min=s["oracle_price"]),
    )


def perp_account(i: int, p: dict):
    return SimpleNamespace(
        market_index=i,
        oracle_price=p["oracle_price"],
        status=MarketStatus.Active(),
        contract_type=ContractType.Perpetual(),
        margin_ratio_initial=p["margin_ratio_initial"],
        margin_ratio_maintenance=p["margin_ratio_maintenance"],
        high_leverage_margin_ratio_initial=0,
        high_leverage_margin_ratio_maintenance=0,
        imf_factor=p["imf_factor"],
        unrealized_pnl_initial_asset_weight=p["unrealized_pnl_initial_asset_weight"],
        unrealized_pnl_maintenance_asset_weight=p["unrealized_pnl_maintenance_asset_weight"],
        unrealized_pnl_imf_factor=p["unrealized_pnl_imf_factor"],
        unrealized_pnl_max_imbalance=0,
        quote_spot_market_index=0,
        amm=SimpleNamespace(
            cumulative_funding_rate_long=0, cumulative_funding_rate_short=0, order_step_size=1
        ),
    )


def user_account(acct: dict, client: Client):
    spot = []
    for i, amount in acct["spot"]:
        d = client.spot[i].decimals
        kind = SpotBalanceType.Deposit() if amount > 0 else SpotBalanceType.Borrow()
        spot.append(
            SimpleNamespace(
                market_index=i,
                scaled_balance=scaled(amount, d),
                balance_type=kind,
                open_orders=0,
                open_bids=0,
                open_asks=0,
            )
        )
    perp = [
        SimpleNamespace(
            market_index=i,
            base_asset_amount=base,
            quote_asset_amount=quote,
            last_cumulative_funding_rate=0,
            open_orders=0,
            open_bids=0,
            open_asks=0,
            lp_shares=0,
        )
        for i, base, quote in acct["perp"]
    ]
    return SimpleNamespace(
        spot_positions=spot,
        perp_positions=perp,
        max_margin_ratio=0,
        margin_mode=MarginMode.Default(),
        status=0,
    )


def make_user(cls: type, client: Client, account) -> DriftUser:
    user = cls.__new__(cls)  # no RPC connection: the client and subscription are stand-ins
    user.drift_client = client
    user.account_subscriber = SimpleNamespace(
        get_user_account_and_slot=lambda: SimpleNamespace(data=account, slot=0)
    )
    return user


def numbers(client: Client, account, rules: frozenset | None) -> list:
    """[tc initial, tc maintenance, requirement initial, maintenance] of ``DriftUser`` (rules
    None) or of ``ProgramUser`` with those of the program's rules."""
    i, m = MarginCategory.INITIAL, MarginCategory.MAINTENANCE
    rules = frozenset() if rules is None else rules
    margin.calculate_size_discount_asset_weight = (
        program_size_discount if "size_discount" in rules else AS_SHIPPED[0]
    )
    margin.calculate_size_premium_liability_weight = (
        program_size_premium if "size_premium" in rules else AS_SHIPPED[1]
    )
    cls = type("User", (ProgramUser,), {"rules": rules}) if rules else DriftUser
    user = make_user(cls, client, account)
    out = [
        int(user.get_total_collateral(i)),
        int(user.get_total_collateral(m)),
        int(user.get_margin_requirement(i)),
        int(user.get_margin_requirement(m)),
    ]
    if cls is DriftUser:
        out.append(bool(user.can_be_liquidated()))
    return out


def main() -> None:
    spec = json.load(sys.stdin)
    client = Client(spec)
    out = []
    for acct in spec["accounts"]:
        account = user_account(acct, client)
        driftpy = numbers(client, account, None)
        # The transcription with none of the program's rules is driftpy itself.
        none = numbers(client, account, frozenset({"none"}))
        assert none == driftpy[:4], (none, driftpy)
        program = numbers(client, account, frozenset(RULES))
        # Which of driftpy's departures move this account's numbers (each alone).
        tags = [r for r in RULES if numbers(client, account, frozenset({r})) != driftpy[:4]]
        out.append({"driftpy": driftpy, "program": program, "tags": tags})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
