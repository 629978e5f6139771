//! Arbitrary UTF-8 → `lab::file::parse` never panics (errors are fine); a lab that parses also
//! compiles into a data-plane snapshot without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpcsim::fib::{Snapshot, ports_by_index};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match vpcsim::lab::file::parse("fuzz.toml", text) {
        Ok(world) => {
            let ports = ports_by_index(&world);
            let _ = Snapshot::compile(&world, 1, &|id| ports.get(id).copied());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
