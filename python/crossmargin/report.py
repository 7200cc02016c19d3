"""A self-contained HTML report (matplotlib PNGs inlined) from a run's output folder.

Every section reads one of the files the CLI writes (docs in README "Outputs"); a section
whose file is absent is left out, so ``crossmargin report DIR`` works after any subset of
``margin``, ``stress``, ``cascade``, ``liq-prices``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin._optional import require
from crossmargin.exceptions import ConfigError

if TYPE_CHECKING:  # pandas and matplotlib come with the cli extra, imported where used
    import pandas as pd

REPORT_NAME = "report.html"


def _png(fig: Any) -> str:
    plt = require("matplotlib.pyplot", "the HTML report")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(w: float = 7.5, h: float = 3.4) -> tuple[Any, Any]:
    require("matplotlib", "the HTML report").use("Agg")
    plt = require("matplotlib.pyplot", "the HTML report")

    fig, ax = plt.subplots(figsize=(w, h))
    ax.grid(alpha=0.3)
    return fig, ax


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _table(df: pd.DataFrame, floats: str = "{:,.2f}") -> str:
    return df.to_html(index=False, float_format=lambda v: floats.format(v), border=0, classes="t")


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    p = folder / name
    return require("pandas", "the HTML report").read_parquet(p) if p.exists() else None


def margin_section(m: pd.DataFrame) -> str:
    ratio = m.margin_ratio.to_numpy()
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    fig, ax = _figure()
    if len(finite):
        bins = np.logspace(np.log10(max(finite.min(), 1e-4)), np.log10(max(finite.max(), 1.0)), 60)
        ax.hist(finite, bins=bins, color="#3b6ea8")
        ax.set_xscale("log")
    ax.axvline(1.0, color="#c0392b", lw=1.5, label="maintenance (ratio 1)")
    ax.set_xlabel("margin ratio = maintenance margin / adjusted equity (log)")
    ax.set_ylabel("accounts")
    ax.legend()
    risky = m.sort_values("margin_ratio", ascending=False).head(15)[
        ["account", "equity", "adj_equity_maint", "mm", "margin_ratio", "liquidatable", "bankrupt"]
    ]
    return (
        "<h2>Margin</h2>"
        f"<p>{len(m):,} accounts; {int(m.liquidatable.sum()):,} below maintenance, "
        f"{int(m.bankrupt.sum()):,} with negative equity, "
        f"{int(np.isinf(ratio).sum()):,} with their pool exhausted.</p>"
        "<h3>Margin-ratio distribution</h3>"
        + _png(fig)
        + "<h3>Riskiest accounts</h3>"
        + _table(risky)
    )


def collateral_section(c: pd.DataFrame) -> str:
    fig, ax = _figure()
    c = c.sort_values("usd", ascending=False)
    ax.bar(c.asset, c.usd_positive / 1e6, color="#3b6ea8", label="held")
    ax.bar(c.asset, c.usd_borrowed / 1e6, color="#c0392b", label="borrowed")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("USD millions")
    ax.legend()
    return "<h2>Collateral composition</h2>" + _png(fig) + _table(c)


def efficiency_section(e: pd.DataFrame) -> str:
    fig, ax = _figure(6.0, 3.2)
    names = [c for c in ("isolated", "cross", "portfolio") if f"required_{c}" in e.columns]
    totals = [float(e[f"required_{c}"].sum()) for c in names]
    ax.bar(names, np.array(totals) / 1e6, color=["#8e8e8e", "#3b6ea8", "#27ae60"][: len(names)])
    ax.set_ylabel("collateral required, USD millions")
    rows = require("pandas", "the HTML report").DataFrame(
        {"model": names, "total_requirement_usd": totals}
    )
    return "<h2>Capital efficiency</h2>" + _png(fig) + _table(rows)


def stress_section(s: pd.DataFrame) -> str:
    fig, ax = _figure()
    y = np.arange(len(s))
    ax.barh(y, s.bad_debt / 1e6, color="#c0392b", label="bad debt")
    ax.barh(
        y, s.shortfall / 1e6, left=s.bad_debt / 1e6, color="#e67e22", label="maintenance shortfall"
    )
    ax.set_yticks(y, s.scenario)
    ax.set_xlabel("USD millions")
    ax.legend()
    return "<h2>Stress scenarios</h2>" + _png(fig) + _table(s)


def cascade_section(r: pd.DataFrame, summary: dict[str, Any] | None) -> str:
    require("matplotlib", "the HTML report").use("Agg")
    plt = require("matplotlib.pyplot", "the HTML report")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    marks = [c for c in r.columns if c.startswith("mark_")]
    for c in marks:
        axes[0].plot(r["round"], r[c] / r[c].iloc[0], label=c[5:])
    axes[0].set_title("marks (÷ first round)")
    axes[0].legend(fontsize=7)
    axes[1].bar(r["round"], r.liquidated_notional_usd / 1e6, color="#3b6ea8")
    axes[1].set_title("liquidated notional, USD m")
    axes[2].plot(r["round"], r.insurance_fund_usd / 1e6, color="#27ae60", label="insurance fund")
    axes[2].plot(
        r["round"], -r.cumulative_bad_debt_usd / 1e6, color="#c0392b", label="− cumulative bad debt"
    )
    axes[2].set_title("USD m")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlabel("round")
    facts = ""
    if summary:
        facts = (
            "<ul>"
            + "".join(
                f"<li>{html.escape(k.replace('_', ' '))}: {v:,.2f}</li>"
                if isinstance(v, float)
                else f"<li>{html.escape(k.replace('_', ' '))}: {v}</li>"
                for k, v in summary.items()
            )
            + "</ul>"
        )
    return "<h2>Liquidation cascade</h2>" + facts + _png(fig)


def ladder_section(lp: pd.DataFrame, marks: dict[str, float]) -> str:
    """Liquidation-price ladder: notional that reaches its liquidation price at each level,
    per market, as a distance from today's mark."""
    lp = lp[np.isfinite(lp.liq_price) & lp.market.isin(list(marks))]
    if lp.empty:
        return ""
    fig, ax = _figure()
    for market, g in lp.groupby("market"):
        dist = (g.liq_price / marks[market] - 1.0) * 100
        dist = dist[(dist > -60) & (dist < 60)]
        ax.hist(dist, bins=120, histtype="step", label=str(market))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("liquidation price vs mark, %")
    ax.set_ylabel("positions")
    ax.legend(fontsize=7)
    return "<h2>Liquidation-price ladder</h2>" + _png(fig)


def venues_section(df: pd.DataFrame) -> str:
    """The same book under each venue's rule set (``crossmargin compare-venues``)."""
    fig, ax = _figure()
    x = np.arange(len(df))
    ax.bar(x - 0.2, df.im / 1e6, 0.4, color="#3b6ea8", label="initial margin")
    ax.bar(x + 0.2, df.mm / 1e6, 0.4, color="#e67e22", label="maintenance margin")
    ax.set_xticks(x, df.venue, rotation=20)
    ax.set_ylabel("USD millions")
    ax.legend()
    return (
        "<h2>Venues</h2><p>The same book under each venue's published rules; collateral and "
        "markets a venue lacks are left out (dropped columns).</p>" + _png(fig) + _table(df)
    )


def montecarlo_section(
    paths: pd.DataFrame,
    fund: pd.DataFrame | None,
    risk: pd.DataFrame | None,
    markets: pd.DataFrame | None,
    summary: dict[str, Any] | None,
) -> str:
    """``crossmargin montecarlo``: the distribution of bad debt over the paths, its
    exceedance curve P(bad debt ≥ x), and the insurance fund needed for each target
    probability of exhausting it (with the order-statistic CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.sort(paths.bad_debt_usd.to_numpy())
    n = len(x)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    pos = x[x > 0]
    if len(pos):
        axes[0].hist(pos, bins=min(60, max(5, len(pos) // 5)), color="#c0392b")
    axes[0].set_title(f"bad debt on the {len(pos):,} of {n:,} paths with any")
    axes[0].set_xlabel("USD")
    if n:
        p = 1.0 - np.arange(n) / n  # P(X ≥ x_(i)), 1/n at the largest path
        axes[1].step(x, p, where="post", color="#3b6ea8")
        axes[1].set_yscale("log")
        axes[1].set_ylim(max(0.5 / n, 1e-6), 1)
    axes[1].set_title("exceedance: P(bad debt ≥ x)")
    axes[1].set_xlabel("USD")
    if fund is not None and len(fund):
        f = fund[np.isfinite(fund.fund_usd)]
        axes[2].plot(f.target, f.fund_usd, "o-", color="#27ae60", label="fund size")
        lo, hi = f.lower.to_numpy(), f.upper.to_numpy()
        hi = np.where(np.isfinite(hi), hi, np.nan)
        axes[2].fill_between(f.target, lo, hi, color="#27ae60", alpha=0.2, label="95% CI")
        axes[2].set_xscale("log")
        axes[2].invert_xaxis()
        axes[2].legend(fontsize=7)
    axes[2].set_title("fund for P(exhausted) ≤ target")
    axes[2].set_xlabel("target probability")
    for ax in axes:
        ax.grid(alpha=0.3)
    facts = ""
    if summary:
        keep = {
            k: v for k, v in summary.items() if isinstance(v, int | float) and k != "confidence"
        }
        facts = (
            "<ul>"
            + "".join(
                f"<li>{html.escape(k.replace('_', ' '))}: "
                + (f"{v:,.4g}" if isinstance(v, float) else f"{v:,}")
                + "</li>"
                for k, v in keep.items()
            )
            + "</ul>"
        )
        for w in summary.get("warnings") or []:
            facts += f"<p class='meta'>warning: {html.escape(str(w))}</p>"
    tables = ""
    if risk is not None and len(risk):
        tables += "<h3>VaR and expected shortfall of bad debt</h3>" + _table(risk)
    if markets is not None and len(markets):
        tables += "<h3>Bad debt by market on the 1 % tail paths</h3>" + _table(markets)
    return "<h2>Monte Carlo</h2>" + facts + _png(fig) + tables


def provenance_section(provenance: dict[str, Any]) -> str:
    """Which inputs produced the outputs: per command, the ``provenance`` block the CLI
    records in summary.json (version, time, argv, universe and book files with sha256)."""
    rows = []
    for command, p in provenance.items():
        if not isinstance(p, dict):
            continue
        universe = p.get("universe") or {}
        book = p.get("book") or {}
        if "synthetic" in book:
            files = "synthetic: " + ", ".join(f"{k} {v}" for k, v in book["synthetic"].items())
        else:
            files = f"{book.get('path', '')}: " + ", ".join(
                f"{name} {digest}" for name, digest in (book.get("sha256") or {}).items()
            )
        argv = p.get("argv")
        standard = ("crossmargin_version", "command", "argv", "utc", "universe", "book")
        given = {k: v for k, v in p.items() if k not in standard and v not in ({}, None)}
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    command,
                    p.get("utc", ""),
                    p.get("crossmargin_version", ""),
                    f"{universe.get('path', '')} {universe.get('sha256', '')}",
                    files,
                    json.dumps(given) if given else "",
                    "crossmargin " + " ".join(argv) if isinstance(argv, list) else "",
                )
            )
            + "</tr>"
        )
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "command",
            "UTC",
            "version",
            "universe (sha256)",
            "book (sha256)",
            "prices / moves",
            "argv",
        )
    )
    return (
        "<h2>Provenance</h2><p>The inputs of each command run into this folder.</p>"
        f"<table class='t prov'><tr>{head}</tr>{''.join(rows)}</table>"
    )


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}img{max-width:100%}table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.t td,table.t th{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
.meta{color:#666;font-size:.9em}table.prov td{text-align:left;word-break:break-all}
"""


def build(folder: str | Path, title: str = "crossmargin report") -> Path:
    """Writes ``report.html`` into ``folder`` from the outputs there; returns its path."""
    out = Path(folder)
    parts: list[str] = []
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if (m := _read(out, "margin.parquet")) is not None:
        parts.append(margin_section(m))
    if (c := _read(out, "collateral.parquet")) is not None:
        parts.append(collateral_section(c))
    if (e := _read(out, "efficiency.parquet")) is not None:
        parts.append(efficiency_section(e))
    if (s := _read(out, "stress.parquet")) is not None:
        parts.append(stress_section(s))
    if (r := _read(out, "cascade_rounds.parquet")) is not None and len(r):
        parts.append(cascade_section(r, summary.get("cascade")))
    if (lp := _read(out, "liq_prices.parquet")) is not None:
        parts.append(ladder_section(lp, summary.get("marks", {})))
    if (v := _read(out, "venues.parquet")) is not None:
        parts.append(venues_section(v))
    if (mcp := _read(out, "montecarlo.parquet")) is not None:
        parts.append(
            montecarlo_section(
                mcp,
                _read(out, "montecarlo_fund.parquet"),
                _read(out, "montecarlo_risk.parquet"),
                _read(out, "montecarlo_markets.parquet"),
                summary.get("montecarlo"),
            )
        )
    if not parts:
        raise ConfigError(
            f"{out}: no outputs to report on (margin.parquet, stress.parquet, ...)",
            field="folder",
        )
    if isinstance(summary.get("provenance"), dict):
        parts.append(provenance_section(summary["provenance"]))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='meta'>generated {stamp} from {html.escape(str(out.resolve()))}</p>"
        + "".join(parts)
        + "</body></html>"
    )
    path = out / REPORT_NAME
    path.write_text(doc, encoding="utf-8")
    return path


__all__ = ["REPORT_NAME", "build", "montecarlo_section", "provenance_section"]
