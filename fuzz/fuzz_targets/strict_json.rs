//! The duplicate- and depth-refusing JSON parser never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = castellan_jose::strict_json::parse_object(data);
});
