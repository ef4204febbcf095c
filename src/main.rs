//! The `huddle` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// huddle: a self-hosted multi-party call media server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded default configuration unless --config is given).
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate Plivo XML (a file, or `-` for stdin): print every problem, exit 1 on any.
    CheckXml {
        /// The XML document, or `-` to read standard input.
        path: PathBuf,
    },
    /// Validate a configuration file and print the problems, if any.
    CheckConfig {
        /// Configuration file (TOML); the embedded default when absent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(path: Option<&PathBuf>) -> Result<huddle_config::Config, huddle_config::ConfigError> {
    match path {
        Some(p) => huddle_config::load(p),
        None => huddle_config::from_toml_str(huddle_config::DEFAULT_TOML),
    }
}

/// Reads the document (capped a little above the XML size limit, so that an oversized input
/// is still reported as too large rather than read whole) and prints every problem.
fn check_xml(path: &PathBuf) -> ExitCode {
    use std::io::Read;
    let limit = (huddle_xml::MAX_DOCUMENT_BYTES + 1) as u64;
    let mut data = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut data)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut data))
    };
    if let Err(e) = read {
        eprintln!("{}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    match huddle_xml::parse_bytes(&data) {
        Ok(parsed) => {
            for warning in &parsed.warnings {
                println!("warning: {warning}");
            }
            println!(
                "{}: valid ({} verbs)",
                path.display(),
                parsed.document.verbs.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors {
                println!("error: {error}");
            }
            println!("{}: {} problem(s)", path.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    huddle_sip::tls::install_default_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckXml { path } => check_xml(&path),
        Command::CheckConfig { config } => match load(config.as_ref()) {
            Ok(c) => {
                if c.http.uses_default_token() {
                    println!(
                        "warning: http.auth_token is the shipped default {:?}; allowed only because http.listen ({}) is loopback",
                        huddle_config::DEFAULT_AUTH_TOKEN,
                        c.http.listen
                    );
                }
                if let Err(e) = huddle_server::sip_tls(&c) {
                    eprintln!("configuration error: {e:#}");
                    return ExitCode::FAILURE;
                }
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("configuration error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .init();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(huddle_server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
