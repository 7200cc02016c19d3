//! crossmargin-core: the arithmetic of crossmargin, with no Python in sight.
//!
//! - [`universe`]: the risk configuration compiled into flat tables
//!   ([`brackets`], [`haircut`], [`imf`] hold the per-rule math)
//! - [`book`]: balances and positions grouped by account (CSR), once
//! - [`margin`]: the standard cross-margin model, per account, in parallel

pub mod book;
pub mod brackets;
pub mod error;
pub mod haircut;
pub mod imf;
pub mod margin;
pub mod mode;
pub mod universe;

pub use book::{group, BalanceInput, GroupedBook, PositionInput};
pub use error::{CoreError, Result, Table};
pub use margin::{evaluate, evaluate_account, AccountMargin, MarginColumns, MarginContext, Prices, Remap};
pub use mode::Mode;
pub use universe::{AssetSpec, MarketKind, MarketSpec, Universe};
