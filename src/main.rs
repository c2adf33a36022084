//! Entry point: parses flags and hands over to the library. No logic lives here.

use clap::Parser;

use alexa_skill_operator::cli::{Cli, Command, LogFormat};

/// Exit status for a bad flag, environment variable or command line (like clap's own).
const USAGE: u8 = 2;

/// The log filter: `RUST_LOG` when set, else `info`. A `RUST_LOG` that does not parse is a
/// configuration error, not a silent fallback.
fn log_filter() -> Result<tracing_subscriber::EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&value)
            .map_err(|e| format!("invalid value {value:?} for RUST_LOG: {e}")),
        _ => Ok(tracing_subscriber::EnvFilter::new("info")),
    }
}

fn init_tracing(format: LogFormat, filter: tracing_subscriber::EnvFilter) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Parses the command line. A bad flag or environment variable prints one line naming it and
/// what is allowed, and exits 2 before anything is contacted; `--help`/`--version` print as usual.
fn parse() -> Result<Cli, std::process::ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(err) => {
            let rendered = err.render().to_string();
            let mut line = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments")
                .to_owned();
            if let Some(values) = rendered
                .lines()
                .find(|l| l.trim_start().starts_with("[possible values:"))
            {
                line = format!("{line} {}", values.trim());
            }
            if err.kind() == clap::error::ErrorKind::MissingRequiredArgument {
                // clap lists the missing flags on the following lines: keep them on this one.
                let missing: Vec<&str> = rendered
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .take_while(|l| !l.is_empty())
                    .collect();
                line = format!("{line} {}", missing.join(", "));
            }
            if let Some(env) = env_of(&err) {
                line = format!("{line} (flag or environment variable {env})");
            }
            eprintln!("{}", hide_user_info(&line));
            Err(std::process::ExitCode::from(USAGE))
        }
    }
}

/// The environment variable behind the flag an error is about, so a value set in a Deployment's
/// `env:` is recognisable.
fn env_of(err: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.trim_start_matches("--").split([' ', '=']).next()?;
    let command = Cli::command();
    let found = command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_string_lossy()
        .into_owned();
    Some(found)
}

/// Replaces the user info of any URL in `line` (`scheme://user:password@host`), which may hold
/// a credential, with `***`.
fn hide_user_info(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '\'', ' ', '?', '#']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// `import`: the YAML on stdout; a missing credential is a usage error (exit 2), anything else
/// that fails exits 1 with one line.
async fn import(args: &alexa_skill_operator::cli::ImportArgs) -> std::process::ExitCode {
    let env = |key: &str| std::env::var(key).ok();
    match alexa_skill_operator::import::run(args, None, &env).await {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            let code = if err.is_usage() { USAGE } else { 1 };
            std::process::ExitCode::from(code)
        }
    }
}

/// mimalloc instead of glibc's malloc: the operator's work is many small short-lived
/// allocations (JSON of every watch event and request); profiled at 10,000 objects, malloc and
/// free were a large share of both processes' CPU (docs/BENCHMARKS.md section 9).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    alexa_skill_operator::alexa::install_crypto_provider();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = match cli.command {
        Command::Run(args) => {
            let filter = match args.validate().and_then(|()| log_filter()) {
                Ok(filter) => filter,
                Err(line) => {
                    eprintln!("error: {line}");
                    return std::process::ExitCode::from(USAGE);
                }
            };
            init_tracing(args.log_format, filter);
            alexa_skill_operator::operator::run(*args)
                .await
                .map_err(Into::into)
        }
        Command::Crd => alexa_skill_operator::crd::print_all(),
        Command::Import(args) => return import(&args).await,
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
