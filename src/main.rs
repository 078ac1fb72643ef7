//! The `ferry` command: parses arguments, sets up logging, runs the library on a tokio
//! runtime until it finishes or a signal or the run deadline stops it, and maps the result to the documented
//! exit code.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{Cli, Command};
use ferry::commands;

fn main() -> ExitCode {
    ferry::panic::install_hook();
    let cli = Cli::parse();
    ferry::logging::init();
    // `copy` only waits on sockets, and one thread keeps one malloc arena: each worker
    // thread's own arena added about 2 MiB to its peak RSS, for no speed.
    let mut builder = if matches!(cli.command, Command::Copy { .. }) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let work = cli.command.work();
    let deadline = ferry::deadline::Deadline::after(cli.deadline);
    let result = runtime.block_on(async {
        tokio::select! {
            r = commands::run(cli, deadline) => r,
            signal = shutdown_signal() => Err(commands::interrupted(signal, work).await),
            () = deadline.reached() => Err(commands::interrupted(&deadline.describe(), work).await),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            commands::report_error(&err);
            ExitCode::from(ferry::error::exit_code(&err))
        }
    }
}

/// Ctrl-C or SIGTERM (a cancelled GitHub Actions job).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return "an interrupt (Ctrl-C)";
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "an interrupt (Ctrl-C)",
            _ = term.recv() => "SIGTERM (job cancelled?)",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "an interrupt (Ctrl-C)"
    }
}
