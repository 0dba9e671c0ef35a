//! Fledge's analyzer: everything between the pure statistics in `fledge-judges` and the
//! `fledge` command line.

pub mod config;
pub mod recording;
pub mod engine;
pub mod synth;
pub mod report;
pub mod replay;
