//! `cargo bench -p graceful-server-benchmarks [-- --quick | --help]`: the
//! side-by-side benchmark. The driver is the library of this package; this
//! target exists so that cargo builds the peer servers of `src/bin/` first
//! and tells where they are.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    graceful_server_benchmarks::run(graceful_server_benchmarks::PeerBinaries {
        blocking: PathBuf::from(env!("CARGO_BIN_EXE_blocking")),
        tiny: PathBuf::from(env!("CARGO_BIN_EXE_tiny")),
        tiny_tls: PathBuf::from(env!("CARGO_BIN_EXE_tiny_tls")),
        quickstart: PathBuf::from(env!("CARGO_BIN_EXE_quickstart")),
        hyper: PathBuf::from(env!("CARGO_BIN_EXE_hyper")),
        astra: PathBuf::from(env!("CARGO_BIN_EXE_astra")),
    })
}
