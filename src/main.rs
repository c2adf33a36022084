//! Entry point: parses flags and hands over to the library. No logic lives here.

use clap::Parser;

use alexa_skill_operator::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(_args) => Ok(()),
        Command::Crd => alexa_skill_operator::crd::print_all(),
        Command::Simulate(args) => alexa_skill_operator::simulator::serve_cli(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
