//! The `alexa-simulator` binary: parses flags and serves until Ctrl-C or SIGTERM
//! (`alexa-skill-operator simulate ARGS` execs this binary with the same ARGS).

use clap::Parser;

use alexa_simulator::{SimulateArgs, serve_cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve_cli(SimulateArgs::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
