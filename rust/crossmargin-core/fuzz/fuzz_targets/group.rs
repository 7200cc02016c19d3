//! libFuzzer target: arbitrary bytes → crossmargin_core (see ../src/lib.rs, fuzz_group).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| crossmargin_core_fuzz::fuzz_group(data));
