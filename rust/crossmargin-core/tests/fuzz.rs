//! The cargo-fuzz targets (fuzz/src/lib.rs) on stable Rust, bounded, for CI:
//!
//! - proptest: a fixed number of arbitrary byte strings per target (deterministic seed);
//! - a time-boxed run of random byte strings from a SplitMix64 stream, for
//!   `CROSSMARGIN_FUZZ_SECONDS` seconds in total (default 3; .ci/test sets more), split over
//!   the three targets; a failure prints the seed and case to replay.
//!
//! The same functions under libFuzzer (coverage-guided, sanitizers): `cargo +nightly fuzz run
//! group` in rust/crossmargin-core/fuzz (docs/ROBUSTNESS.md).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::time::{Duration, Instant};

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn group_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        targets::fuzz_group(&data);
    }

    #[test]
    fn evaluate_never_panics(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        targets::fuzz_evaluate(&data);
    }

    #[test]
    fn cascade_never_panics(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        targets::fuzz_cascade(&data);
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, good-enough stream of bytes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max_len + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn budget() -> Duration {
    let secs = std::env::var("CROSSMARGIN_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn time_boxed(name: &str, seed: u64, share: Duration, target: fn(&[u8])) -> u64 {
    let mut rng = SplitMix(seed);
    let start = Instant::now();
    let mut cases = 0u64;
    while cases == 0 || start.elapsed() < share {
        let data = rng.bytes(1024);
        let outcome = std::panic::catch_unwind(|| target(&data));
        if let Err(e) = outcome {
            panic!("fuzz target {name} failed on case {cases} (seed {seed:#x}): {data:?}\n{e:?}");
        }
        cases += 1;
    }
    cases
}

#[test]
fn targets_survive_random_bytes_for_a_bounded_time() {
    let share = budget() / 3;
    let seed = std::env::var("CROSSMARGIN_FUZZ_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0x5EED);
    let runs = [
        ("group", time_boxed("group", seed, share, targets::fuzz_group)),
        ("evaluate", time_boxed("evaluate", seed ^ 1, share, targets::fuzz_evaluate)),
        ("cascade", time_boxed("cascade", seed ^ 2, share, targets::fuzz_cascade)),
    ];
    for (name, cases) in runs {
        eprintln!("fuzz {name}: {cases} cases in {:.1} s", share.as_secs_f64());
    }
    let reached: Vec<u64> = targets::REACHED.iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).collect();
    eprintln!("fuzz: {} evaluations, {} cascades run ({} completed)", reached[0], reached[1], reached[2]);
    assert!(reached[0] > 0 && reached[2] > 0, "the decoders reach the kernels");
}
