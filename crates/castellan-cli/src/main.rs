//! The `castellan` binary.
#![forbid(unsafe_code)]

/// `println!` that does not panic when stdout is a closed pipe (`castellan keys list | head -1`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

mod admin;
mod audit;
mod cli;
mod decisions;
mod gate;
mod policy;
mod probe;
mod report;
mod serve;
mod store_cmd;
mod users;
mod workload;
mod workload_agent;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    castellan_verify::install_tls_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
