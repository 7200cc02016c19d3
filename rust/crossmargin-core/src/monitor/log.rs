//! The audit trail (docs/MODEL.md "Live monitoring", "Audit log"): one table, one row per
//! applied change or crossing, numbered by `seq` (one number per operation; 0 is the starting
//! state). What each kind of row fills in (other cells: 0, false or NaN):
//!
//! | kind | account | symbol | side | qty | price | isolated_margin | other |
//! |---|---|---|---|---|---|---|---|
//! | asset_price | | asset | | | the new price | | |
//! | mark | | market | | | the new mark | | |
//! | balance | ✓ | asset | | new balance | | | |
//! | position | ✓ | market | position side | new qty | new entry | new isolated margin | |
//! | order | ✓ | market | | signed qty (> 0 buys) | limit price | | reduce_only |
//! | clear_orders | ✓ | market | | | | | |
//! | fill | ✓ | market | position side | signed fill qty | fill price | | pnl: realised |
//! | refresh | | | | | | | |
//! | crossing | ✓ | | | | | | previous, level, ratio_before, ratio_after |
//! | margin_call | | | | | the threshold | | |
//!
//! A seq's `order` rows for one (account, market) are that key's whole new set of open
//! orders; `clear_orders` empties it. `fill` and `crossing` rows record what happened; replay
//! recomputes them (and checks nothing else).

/// Row kinds, by code.
pub const KIND_NAMES: [&str; 10] = [
    "asset_price",
    "mark",
    "balance",
    "position",
    "order",
    "clear_orders",
    "fill",
    "refresh",
    "crossing",
    "margin_call",
];

pub const ASSET_PRICE: u8 = 0;
pub const MARK: u8 = 1;
pub const BALANCE: u8 = 2;
pub const POSITION: u8 = 3;
pub const ORDER: u8 = 4;
pub const CLEAR_ORDERS: u8 = 5;
pub const FILL: u8 = 6;
pub const REFRESH: u8 = 7;
pub const CROSSING: u8 = 8;
pub const MARGIN_CALL: u8 = 9;

/// One row of the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub kind: u8,
    pub account: i64,
    pub symbol: u32,
    pub side: u8,
    pub qty: f64,
    pub price: f64,
    pub isolated_margin: f64,
    pub reduce_only: bool,
    pub pnl: f64,
    pub previous: u8,
    pub level: u8,
    pub ratio_before: f64,
    pub ratio_after: f64,
}

impl Entry {
    /// A row of `kind` in operation `seq` with every other cell empty.
    pub fn new(seq: u64, kind: u8) -> Self {
        Entry {
            seq,
            kind,
            account: 0,
            symbol: 0,
            side: 0,
            qty: f64::NAN,
            price: f64::NAN,
            isolated_margin: f64::NAN,
            reduce_only: false,
            pnl: f64::NAN,
            previous: 0,
            level: 0,
            ratio_before: f64::NAN,
            ratio_after: f64::NAN,
        }
    }
}

/// The log as columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub seq: Vec<u64>,
    pub kind: Vec<u8>,
    pub account: Vec<i64>,
    pub symbol: Vec<u32>,
    pub side: Vec<u8>,
    pub qty: Vec<f64>,
    pub price: Vec<f64>,
    pub isolated_margin: Vec<f64>,
    pub reduce_only: Vec<bool>,
    pub pnl: Vec<f64>,
    pub previous: Vec<u8>,
    pub level: Vec<u8>,
    pub ratio_before: Vec<f64>,
    pub ratio_after: Vec<f64>,
}

impl Log {
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    pub fn push(&mut self, e: Entry) {
        self.seq.push(e.seq);
        self.kind.push(e.kind);
        self.account.push(e.account);
        self.symbol.push(e.symbol);
        self.side.push(e.side);
        self.qty.push(e.qty);
        self.price.push(e.price);
        self.isolated_margin.push(e.isolated_margin);
        self.reduce_only.push(e.reduce_only);
        self.pnl.push(e.pnl);
        self.previous.push(e.previous);
        self.level.push(e.level);
        self.ratio_before.push(e.ratio_before);
        self.ratio_after.push(e.ratio_after);
    }

    pub fn get(&self, i: usize) -> Entry {
        Entry {
            seq: self.seq[i],
            kind: self.kind[i],
            account: self.account[i],
            symbol: self.symbol[i],
            side: self.side[i],
            qty: self.qty[i],
            price: self.price[i],
            isolated_margin: self.isolated_margin[i],
            reduce_only: self.reduce_only[i],
            pnl: self.pnl[i],
            previous: self.previous[i],
            level: self.level[i],
            ratio_before: self.ratio_before[i],
            ratio_after: self.ratio_after[i],
        }
    }

    /// Whether two logs hold the same rows, bit for bit (empty cells are NaN, which `==`
    /// never equals).
    pub fn same(&self, other: &Log) -> bool {
        let bits =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        self.seq == other.seq
            && self.kind == other.kind
            && self.account == other.account
            && self.symbol == other.symbol
            && self.side == other.side
            && bits(&self.qty, &other.qty)
            && bits(&self.price, &other.price)
            && bits(&self.isolated_margin, &other.isolated_margin)
            && self.reduce_only == other.reduce_only
            && bits(&self.pnl, &other.pnl)
            && self.previous == other.previous
            && self.level == other.level
            && bits(&self.ratio_before, &other.ratio_before)
            && bits(&self.ratio_after, &other.ratio_after)
    }

    /// The rows from `start` on (a copy).
    pub fn since(&self, start: usize) -> Log {
        let mut out = Log::default();
        for i in start.min(self.len())..self.len() {
            out.push(self.get(i));
        }
        out
    }

    /// Row ranges of each operation, in order: (seq, rows). Errors when the numbers go down
    /// or the columns' lengths differ.
    pub fn operations(&self) -> crate::error::Result<Vec<(u64, std::ops::Range<usize>)>> {
        let n = self.seq.len();
        let lens = [
            self.kind.len(),
            self.account.len(),
            self.symbol.len(),
            self.side.len(),
            self.qty.len(),
            self.price.len(),
            self.isolated_margin.len(),
            self.reduce_only.len(),
            self.pnl.len(),
            self.previous.len(),
            self.level.len(),
            self.ratio_before.len(),
            self.ratio_after.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(crate::error::CoreError::config("log", format!("columns of unequal length ({n} seq values)")));
        }
        let mut out: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
        for i in 0..n {
            match out.last_mut() {
                Some((s, r)) if *s == self.seq[i] => r.end = i + 1,
                Some((s, _)) if *s > self.seq[i] => {
                    return Err(crate::error::CoreError::config(
                        format!("log.seq[{i}]"),
                        format!("{} follows {s}: operations must be in order", self.seq[i]),
                    ))
                }
                _ => out.push((self.seq[i], i..i + 1)),
            }
        }
        Ok(out)
    }
}
