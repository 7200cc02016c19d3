//! `Engine.explain`: one account's rows as the standard-model kernel computed them.

use crossmargin_core::explain::explain_account as core_explain;
use crossmargin_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{margin_context, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};

/// A dict: "margin" (the account's totals), "balances", "positions" and "orders" (one list
/// per column, rows in the kernel's order; asset / market as universe indices; orders: one
/// row per market with open orders).
pub fn explain<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    account_index: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let rows = b.rows(py)?;
    if account_index >= rows.n_accounts() {
        return Err(to_pyerr(py, CoreError::config("account", format!("index {account_index} is not in the book"))));
    }
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let ex = detached(py, || Ok(core_explain(rows, account_index, &ctx)))?;
    let m = &ex.margin;
    let margin = PyDict::new(py);
    margin.set_item("equity", m.equity)?;
    margin.set_item("upnl", m.upnl)?;
    margin.set_item("adj_equity_initial", m.adj_equity[0])?;
    margin.set_item("adj_equity_maint", m.adj_equity[1])?;
    margin.set_item("im", m.requirement[0])?;
    margin.set_item("mm", m.requirement[1])?;
    margin.set_item("free_collateral", m.free_collateral())?;
    margin.set_item("margin_ratio", m.margin_ratio())?;
    margin.set_item("liquidatable", m.liquidatable())?;
    margin.set_item("bankrupt", m.bankrupt())?;
    margin.set_item("isolated_liquidatable", m.isolated_liquidatable)?;
    margin.set_item("fee_reserve", m.fee_reserve)?;

    let bal = PyDict::new(py);
    let bl = &ex.balances;
    bal.set_item("asset", bl.iter().map(|x| x.asset).collect::<Vec<_>>())?;
    bal.set_item("qty", bl.iter().map(|x| x.qty).collect::<Vec<_>>())?;
    bal.set_item("price", bl.iter().map(|x| x.price).collect::<Vec<_>>())?;
    bal.set_item("value", bl.iter().map(|x| x.value).collect::<Vec<_>>())?;
    bal.set_item("collateral_initial", bl.iter().map(|x| x.collateral[0]).collect::<Vec<_>>())?;
    bal.set_item("collateral_maint", bl.iter().map(|x| x.collateral[1]).collect::<Vec<_>>())?;

    let pos = PyDict::new(py);
    let pl = &ex.positions;
    pos.set_item("market", pl.iter().map(|x| x.line.market).collect::<Vec<_>>())?;
    pos.set_item("row", pl.iter().map(|x| x.row).collect::<Vec<_>>())?;
    pos.set_item("side", pl.iter().map(|x| x.side as u32).collect::<Vec<_>>())?;
    pos.set_item("qty", pl.iter().map(|x| x.line.qty).collect::<Vec<_>>())?;
    pos.set_item("entry_price", pl.iter().map(|x| x.line.entry).collect::<Vec<_>>())?;
    pos.set_item("mark", pl.iter().map(|x| x.line.mark).collect::<Vec<_>>())?;
    pos.set_item("notional", pl.iter().map(|x| x.line.notional).collect::<Vec<_>>())?;
    pos.set_item("bracket", pl.iter().map(|x| x.bracket.map_or(-1, |k| k as i64)).collect::<Vec<_>>())?;
    pos.set_item("upnl", pl.iter().map(|x| x.line.upnl).collect::<Vec<_>>())?;
    pos.set_item("equity", pl.iter().map(|x| x.line.equity).collect::<Vec<_>>())?;
    pos.set_item("collateral_initial", pl.iter().map(|x| x.line.collateral[0]).collect::<Vec<_>>())?;
    pos.set_item("collateral_maint", pl.iter().map(|x| x.line.collateral[1]).collect::<Vec<_>>())?;
    pos.set_item("im", pl.iter().map(|x| x.line.requirement[0]).collect::<Vec<_>>())?;
    pos.set_item("mm", pl.iter().map(|x| x.line.requirement[1]).collect::<Vec<_>>())?;
    pos.set_item("isolated_margin", pl.iter().map(|x| x.line.isolated_margin).collect::<Vec<_>>())?;
    pos.set_item(
        "isolated_below_maintenance",
        pl.iter().map(|x| x.line.isolated_below_maintenance).collect::<Vec<_>>(),
    )?;

    let ord = PyDict::new(py);
    let ol = &ex.orders;
    ord.set_item("market", ol.iter().map(|x| x.market).collect::<Vec<_>>())?;
    ord.set_item("orders", ol.iter().map(|x| x.orders).collect::<Vec<_>>())?;
    ord.set_item("bid_qty", ol.iter().map(|x| x.bid_qty).collect::<Vec<_>>())?;
    ord.set_item("ask_qty", ol.iter().map(|x| x.ask_qty).collect::<Vec<_>>())?;
    ord.set_item("worst_case", ol.iter().map(|x| x.worst_case).collect::<Vec<_>>())?;
    ord.set_item("open_loss", ol.iter().map(|x| x.open_loss).collect::<Vec<_>>())?;
    ord.set_item("fees", ol.iter().map(|x| x.fees).collect::<Vec<_>>())?;
    ord.set_item("per_order", ol.iter().map(|x| x.per_order).collect::<Vec<_>>())?;
    ord.set_item("im", ol.iter().map(|x| x.requirement).collect::<Vec<_>>())?;

    let out = PyDict::new(py);
    out.set_item("margin", margin)?;
    out.set_item("balances", bal)?;
    out.set_item("positions", pos)?;
    out.set_item("orders", ord)?;
    Ok(out)
}
