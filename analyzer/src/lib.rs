//! Fledge's analyzer: everything between the pure statistics in `fledge-judges` and the
//! `fledge` command line.

pub mod config;
pub mod engine;
pub mod eval;
pub mod judge;
pub mod live;
pub mod recording;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod service;
pub mod source;
pub mod store;
pub mod synth;
