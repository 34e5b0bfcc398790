//! What every example shares: `--help` with its flags, and errors printed in plain words.

use std::error::Error;
use std::process::ExitCode;

/// The command-line arguments after the program's name. On `--help` or `-h`, prints `usage`
/// and exits.
pub fn args(usage: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", usage.trim());
        std::process::exit(0);
    }
    args
}

/// The exit of an example: an error is printed with its causes (their `Display`, not a debug
/// dump), and the process fails.
pub fn exit(result: Result<(), Box<dyn Error>>) -> ExitCode {
    let Err(error) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {error}");
    let mut cause = error.source();
    while let Some(inner) = cause {
        eprintln!("  because: {inner}");
        cause = inner.source();
    }
    ExitCode::FAILURE
}

/// The preset named on a command line (`--preset`): default, lan, wan or large-cluster.
#[allow(dead_code)] // not every example takes a preset
pub fn preset(name: &str) -> Result<memberlist_plumtree::PlumtreeConfig, String> {
    use memberlist_plumtree::PlumtreeConfig;
    Ok(match name {
        "default" => PlumtreeConfig::default(),
        "lan" => PlumtreeConfig::lan(),
        "wan" => PlumtreeConfig::wan(),
        "large-cluster" => PlumtreeConfig::large_cluster(),
        other => {
            return Err(format!(
                "unknown preset {other} (default, lan, wan or large-cluster)"
            ));
        }
    })
}

/// The error for a flag the example does not know.
pub fn unknown(flag: &str) -> String {
    format!("unknown argument {flag} (--help lists the flags)")
}
