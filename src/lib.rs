//! switchyard — a live-stream packet router for broadcast contribution.
//!
//! The crate is layered as described in `DESIGN.md`:
//!
//! - **sans-IO core** ([`ts`], [`rtp`], [`ring`], [`probe`], [`config`],
//!   [`progress`], [`health`], [`placement`], [`encoder`] profiles and
//!   arguments, and the protocol cores of [`ingest`]): parsing, indexing, per-stream
//!   buffering, analysis and validation as plain synchronous code over byte
//!   slices and text. No sockets, no files, no clock reads, no tasks; every
//!   function is deterministic and testable without I/O.
//! - **shell** (the binary in `main.rs`, and later ingest/encoder/output tasks):
//!   thin code that moves bytes between the world and the core.
//!
//! Design principles for the core, in the spirit of `mpeg2ts-reader` and
//! `quinn-proto`:
//!
//! 1. Zero copy: packets are views over the caller's buffer (`&[u8]` or
//!    `bytes::Bytes`); nothing on the per-packet path allocates.
//! 2. Never panic on input: every length and offset is checked, and a malformed
//!    packet is an error value that callers count and skip.
//! 3. Newtypes for protocol numbers (`Pid`, `Cc`, `Timestamp`, `Pcr`) with
//!    wrap-aware arithmetic where the protocol wraps.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod encoder;
pub mod failover;
pub mod fuzz_harness;
pub mod health;
pub mod ingest;
pub mod output;
pub mod placement;
pub mod probe;
pub mod progress;
pub mod ring;
pub mod rtp;
pub mod splice;
pub mod ts;
