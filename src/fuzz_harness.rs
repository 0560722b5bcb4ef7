//! Invariant-checking entry points shared by the cargo-fuzz targets in
//! `fuzz/` and the corpus replay test, so that `cargo test` on stable runs
//! every committed seed through exactly what the fuzzer runs.
