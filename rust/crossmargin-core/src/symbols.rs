//! Dictionary encoding of symbol columns (docs/MODEL.md "Book", "Fast paths"): each distinct
//! symbol a code, the codes numbered in the symbols' sorted order (UTF-8 byte order, which is
//! code point order, as Python sorts str), so that a book's codes do not depend on its row
//! order, its chunking or the thread count.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::memory::{reserved_column, Disjoint};

/// Rows a task encodes at a time.
const CHUNK_ROWS: usize = 1 << 16;

/// A column's codes (row → index into `labels`) and its distinct symbols, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub codes: Vec<u32>,
    pub labels: Vec<String>,
}

/// Why a column did not encode: the first such row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSymbols {
    /// A null cell.
    Missing(usize),
    /// Bytes that are not UTF-8.
    NotUtf8(usize),
}

/// An Arrow string array's offsets (`string`: i32, `large_string`: i64).
pub trait Offset: Copy + Send + Sync {
    fn at(self) -> usize;
}
impl Offset for i32 {
    #[inline(always)]
    fn at(self) -> usize {
        self as usize
    }
}
impl Offset for i64 {
    #[inline(always)]
    fn at(self) -> usize {
        self as usize
    }
}

/// A multiply-rotate hash of short byte strings (symbols are a few bytes; the std hasher's
/// SipHash would cost more than the rest of a row's work).
#[derive(Default)]
pub struct SymbolHasher(u64);

impl Hasher for SymbolHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(last) ^ rest.len() as u64).wrapping_mul(K);
        self.0 = h;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Distinct symbols of a chunk → their local codes (in first-seen order).
pub type Dictionary<'a> = HashMap<&'a [u8], u32, BuildHasherDefault<SymbolHasher>>;

/// A chunk's rows encoded by a local dictionary: their local codes and its symbols.
pub struct LocalCodes<'a> {
    pub codes: Vec<u32>,
    pub symbols: Vec<&'a [u8]>,
}

impl<'a> LocalCodes<'a> {
    pub fn new(rows: usize) -> Self {
        LocalCodes { codes: Vec::with_capacity(rows), symbols: vec![] }
    }

    /// Appends a row holding `symbol`; returns its local code.
    #[inline]
    pub fn push(&mut self, dictionary: &mut Dictionary<'a>, symbol: &'a [u8]) -> u32 {
        let next = self.symbols.len() as u32;
        let code = *dictionary.entry(symbol).or_insert_with(|| {
            self.symbols.push(symbol);
            next
        });
        self.codes.push(code);
        code
    }
}

/// The chunks' local codes joined: the distinct symbols sorted, each row its symbol's place
/// among them (in parallel over the chunks, which lie in row order).
pub fn join(chunks: Vec<LocalCodes<'_>>) -> Result<Encoded, NotSymbols> {
    let mut all: Vec<&[u8]> = chunks.iter().flat_map(|c| c.symbols.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    // Each chunk's first row.
    let starts: Vec<usize> = chunks
        .iter()
        .scan(0usize, |s, c| {
            let at = *s;
            *s += c.codes.len();
            Some(at)
        })
        .collect();
    let mut labels = Vec::with_capacity(all.len());
    for s in &all {
        let Ok(label) = std::str::from_utf8(s) else {
            // The first row holding a symbol that is not UTF-8.
            let bad = chunks
                .iter()
                .zip(&starts)
                .find_map(|(c, &at)| {
                    c.codes.iter().position(|&k| std::str::from_utf8(c.symbols[k as usize]).is_err()).map(|i| at + i)
                })
                .expect("a row holds the symbol");
            return Err(NotSymbols::NotUtf8(bad));
        };
        labels.push(label.to_owned());
    }
    let n: usize = chunks.iter().map(|c| c.codes.len()).sum();
    let mut codes = reserved_column::<u32>(n);
    let out = Disjoint::new(&mut codes);
    chunks.par_iter().zip(starts).for_each(|(c, at)| {
        let global: Vec<u32> =
            c.symbols.iter().map(|s| all.binary_search(s).expect("a collected symbol") as u32).collect();
        for (i, &k) in c.codes.iter().enumerate() {
            // SAFETY: the chunk's rows are at..at + len, no other chunk's, within n.
            unsafe { out.write(at + i, global[k as usize]) };
        }
    });
    // SAFETY: the chunks wrote every row 0..n.
    unsafe { codes.set_len(n) };
    Ok(Encoded { codes, labels })
}

/// A direct-mapped cache of symbols of at most 8 bytes (most tickers): such a symbol is
/// its bytes as one word and its length, so a hit is exact, and a column of a few hundred
/// distinct symbols takes nearly every row's code here rather than from the dictionary.
struct ShortSymbols([(u64, u32, u32); 256]);

impl Default for ShortSymbols {
    fn default() -> Self {
        // Length u32::MAX matches no symbol.
        ShortSymbols([(0, u32::MAX, 0); 256])
    }
}

impl ShortSymbols {
    /// The code of `symbol` (`data[s..e]`) if cached, else the place to keep it at (None:
    /// too long).
    #[inline(always)]
    fn code(&self, data: &[u8], s: usize, e: usize) -> Result<u32, Option<(usize, u64)>> {
        let len = e - s;
        if len > 8 {
            return Err(None);
        }
        // The word at s, its bytes past the symbol cleared (a plain load where 8 bytes remain).
        let word = match data.get(s..s + 8) {
            Some(w) => {
                let mask = if len == 8 { u64::MAX } else { (1u64 << (8 * len)) - 1 };
                u64::from_le_bytes(w.try_into().expect("8 bytes")) & mask
            }
            None => {
                let mut bytes = [0u8; 8];
                bytes[..len].copy_from_slice(&data[s..e]);
                u64::from_le_bytes(bytes)
            }
        };
        let at = ((word ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
        let (cached_word, cached_len, code) = self.0[at];
        if cached_word == word && cached_len == len as u32 {
            Ok(code)
        } else {
            Err(Some((at, word)))
        }
    }

    /// Keeps `symbol`'s code at the place [`ShortSymbols::code`] gave.
    #[inline(always)]
    fn keep(&mut self, at: Option<(usize, u64)>, symbol: &[u8], code: u32) {
        if let Some((at, word)) = at {
            self.0[at] = (word, symbol.len() as u32, code);
        }
    }
}

/// Encodes an Arrow string array given its buffers: `offsets` (`len + 1` of them, already
/// sliced to the array), `data`, and its validity bitmap with the array's bit offset (None:
/// no nulls). In parallel over chunks of rows.
pub fn encode_strings<O: Offset>(
    offsets: &[O],
    data: &[u8],
    valid: Option<(&[u8], usize)>,
) -> Result<Encoded, NotSymbols> {
    let n = offsets.len().saturating_sub(1);
    let is_valid = |r: usize| valid.is_none_or(|(bits, off)| bits[(r + off) / 8] >> ((r + off) % 8) & 1 == 1);
    let chunks: Vec<Result<LocalCodes<'_>, NotSymbols>> = (0..n.div_ceil(CHUNK_ROWS))
        .into_par_iter()
        .map(|c| {
            let rows = c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n);
            let mut local = LocalCodes::new(rows.len());
            let mut dictionary = Dictionary::default();
            let mut short = ShortSymbols::default();
            for r in rows {
                if !is_valid(r) {
                    return Err(NotSymbols::Missing(r));
                }
                let (s, e) = (offsets[r].at(), offsets[r + 1].at());
                let symbol = &data[s..e];
                match short.code(data, s, e) {
                    Ok(code) => local.codes.push(code),
                    Err(at) => {
                        let code = local.push(&mut dictionary, symbol);
                        short.keep(at, symbol, code);
                    }
                }
            }
            Ok(local)
        })
        .collect();
    // The first chunk's error is the first bad row (chunks are in row order).
    join(chunks.into_iter().collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrow(cells: &[Option<&str>]) -> (Vec<i32>, Vec<u8>, Vec<u8>) {
        let (mut offsets, mut data, mut bits) = (vec![0i32], vec![], vec![0u8; cells.len().div_ceil(8) + 1]);
        for (r, c) in cells.iter().enumerate() {
            if let Some(s) = c {
                data.extend_from_slice(s.as_bytes());
                bits[(r + 3) / 8] |= 1 << ((r + 3) % 8);
            }
            offsets.push(data.len() as i32);
        }
        (offsets, data, bits)
    }

    #[test]
    fn codes_follow_the_sorted_symbols_whatever_the_chunking() {
        // More rows than a chunk, symbols first seen in different orders in different chunks.
        // Short and long symbols, one of exactly 8 bytes, and two that differ by a NUL only.
        let names = ["USDT", "BTC", "é", "ETH", "", "a-much-longer-symbol-name", "BTC2", "ETHUSDT2", "A", "A\0"];
        let cells: Vec<Option<&str>> = (0..200_000).map(|i| Some(names[(i * 3 + i / 70_000) % names.len()])).collect();
        let (offsets, data, bits) = arrow(&cells);
        let got = encode_strings(&offsets, &data, Some((&bits, 3))).unwrap();
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort();
        assert_eq!(got.labels, sorted);
        for (r, c) in cells.iter().enumerate() {
            assert_eq!(got.labels[got.codes[r] as usize], c.unwrap(), "row {r}");
        }
        let wide: Vec<i64> = offsets.iter().map(|&o| o as i64).collect();
        assert_eq!(encode_strings(&wide, &data, None).unwrap(), got);
    }

    #[test]
    fn a_cached_short_symbol_is_matched_by_its_bytes_and_length() {
        // "A" and "A\0" are one word; a slot holding "A" must not answer "A\0" (as if the
        // two had collided in the cache).
        let data = b"A\0A";
        let mut short = ShortSymbols::default();
        let at = short.code(data, 0, 2).expect_err("empty cache");
        short.keep(at, b"A", 7);
        assert!(short.code(data, 0, 2).is_err());
        let at = short.code(data, 2, 3).expect_err("not kept yet");
        short.keep(at, b"A", 9);
        assert_eq!(short.code(data, 2, 3), Ok(9));
        assert_eq!(short.code(b"ABCDEFGHI", 0, 9), Err(None), "more than 8 bytes: not cached");
    }

    #[test]
    fn the_first_null_or_non_utf8_row_is_named() {
        let mut cells: Vec<Option<&str>> = vec![Some("BTC"); 150_000];
        cells[140_000] = None;
        cells[70_001] = None;
        let (offsets, data, bits) = arrow(&cells);
        assert_eq!(encode_strings(&offsets, &data, Some((&bits, 3))), Err(NotSymbols::Missing(70_001)));
        let (offsets, mut data, _) = arrow(&[Some("BTC"), Some("ETH"), Some("XY"), Some("XY")]);
        data[6] = 0xff;
        assert_eq!(encode_strings(&offsets, &data, None), Err(NotSymbols::NotUtf8(2)));
        assert_eq!(encode_strings::<i32>(&[0], &[], None).unwrap(), Encoded { codes: vec![], labels: vec![] });
        assert_eq!(encode_strings::<i32>(&[], &[], None).unwrap(), Encoded { codes: vec![], labels: vec![] });
    }
}
