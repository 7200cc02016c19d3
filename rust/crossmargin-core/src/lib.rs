//! crossmargin-core: the arithmetic of crossmargin, with no Python in sight.
//!
//! - [`universe`]: the risk configuration compiled into flat tables
//!   ([`brackets`], [`haircut`], [`imf`] hold the per-rule math)
//! - [`book`]: balances, positions (with their sides) and open orders grouped by account
//!   (CSR), once; [`orders`]: the initial margin open orders lock
//! - [`margin`]: the standard cross-margin model, per account, in parallel
//! - [`liqprice`]: liquidation price per position; [`stress`]: many scenarios in one pass;
//!   [`efficiency`]: isolated vs cross capital requirement
//! - [`limits`]: the numeric domain every input is checked against
//! - [`money`]: integer minor units and the conserving split; [`funding`]: zero-sum funding
//!   payments; [`solvency`]: liabilities vs reserves and the Merkle-sum proof of liabilities
//! - [`options`]: Black-76 and the standard margin of options; [`portfolio`]: scenario
//!   (SPAN-like), delta and hybrid margin models and greeks per account × underlying;
//!   [`span`]: CME SPAN per combined commodity (scan, spreads, credits, SOM)

pub mod book;
pub mod brackets;
pub mod cascade;
pub mod contract;
pub mod efficiency;
pub mod error;
pub mod explain;
pub mod fixed;
pub mod fsum;
pub mod funding;
pub mod haircut;
pub mod imf;
pub mod kernel;
pub mod limits;
pub mod liqprice;
pub mod margin;
pub mod memory;
pub mod mode;
pub mod money;
pub mod monitor;
pub mod options;
pub mod orders;
pub mod portfolio;
pub mod solvency;
pub mod span;
pub mod stress;
pub mod symbols;
pub mod universe;

pub use book::{
    group, group_into_layout, group_with, BalanceInput, GroupedBook, LaidOutBook, OrderInput, PositionInput,
};
pub use contract::{Contract, Payoff};
pub use error::{CoreError, Result, Table};
pub use margin::{evaluate, evaluate_account, AccountMargin, MarginColumns, MarginContext, Prices, Remap};
pub use mode::Mode;
pub use options::{black76, bsm, BsmGreeks, Greeks, OptionSpec};
pub use portfolio::{PortfolioParams, Scenario, UnderlyingParams};
pub use span::SpanParams;
pub use universe::{AssetSpec, Basis, MarketKind, MarketRules, MarketSpec, Universe};
