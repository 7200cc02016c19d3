//! Errors of the core. Each names the offending field, symbol or row so that a
//! back-office user can fix the input without a debugger.

/// Which input table a book error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Balances,
    Positions,
    Orders,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Balances => "balances",
            Table::Positions => "positions",
            Table::Orders => "orders",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The universe (risk configuration) is invalid; `field` reads like
    /// `markets[BTCUSDT].brackets[2].mmr`.
    #[error("{field}: {message}")]
    Config { field: String, message: String },

    /// A row of the book is invalid. `other_row` is set for duplicates.
    #[error("{table} row {row}{}: {message}", other_row.map(|r| format!(" (and row {r})")).unwrap_or_default())]
    Book { table: Table, row: usize, other_row: Option<usize>, column: &'static str, message: String },

    /// A price given for one call is unusable (non-finite, non-positive, wrong length).
    #[error("{field}: {message}")]
    Price { field: String, message: String },
}

impl CoreError {
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Config { field: field.into(), message: message.into() }
    }

    pub fn price(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Price { field: field.into(), message: message.into() }
    }

    pub fn book(table: Table, row: usize, column: &'static str, message: impl Into<String>) -> Self {
        CoreError::Book { table, row, other_row: None, column, message: message.into() }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;
