//! Fledge's analyzer: everything between the pure statistics in `fledge-judges` and the
//! `fledge` command line.
