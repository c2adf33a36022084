//! Entry point: parses flags and hands over to the library. No logic lives here.

use clap::Parser;

use alexa_skill_operator::cli::{Cli, Command, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    alexa_skill_operator::alexa::install_crypto_provider();
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = match cli.command {
        Command::Run(args) => {
            init_tracing(args.log_format);
            alexa_skill_operator::operator::run(*args)
                .await
                .map_err(Into::into)
        }
        Command::Crd => alexa_skill_operator::crd::print_all(),
        Command::Simulate { args } => return alexa_skill_operator::cli::run_simulator(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
