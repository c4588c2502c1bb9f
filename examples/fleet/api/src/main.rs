//! `fleet-api --dir DIR`: serves the fleet described by `DIR/fleet.json`, prints `ready` on
//! stdout once every listener is bound, and runs until SIGTERM or SIGINT (exit 0). Exit 1
//! when it cannot start (the reason on stderr), 2 on a bad command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: fleet-api --dir DIR\n\n\
    Serves the simulated platform described by DIR/fleet.json (see examples/fleet/api/README.md).";

fn parse_args() -> Result<PathBuf, String> {
    let mut args = std::env::args_os().skip(1);
    let mut dir = None;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--dir" {
            dir = Some(PathBuf::from(args.next().ok_or("--dir needs a value")?));
        } else if let Some(value) = text.strip_prefix("--dir=") {
            dir = Some(PathBuf::from(value));
        } else if text == "-h" || text == "--help" {
            return Err(String::new());
        } else {
            return Err(format!("unexpected argument {text:?}"));
        }
    }
    dir.ok_or_else(|| "--dir DIR is required".to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = match parse_args() {
        Ok(dir) => dir,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fleet-api: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Before `ready`: a SIGTERM sent the moment the script reads it must stop us cleanly.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fleet-api: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let fleet = match rollbook_fleet_api::start(&dir).await {
        Ok(fleet) => fleet,
        Err(e) => {
            eprintln!("fleet-api: {e}");
            return ExitCode::from(1);
        }
    };
    let a = fleet.addrs();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "fleet-api: platform API on http://{}", a.api);
    let _ = writeln!(
        err,
        "fleet-api: load-balancer health on http://{}/health",
        a.load_balancer
    );
    let _ = writeln!(
        err,
        "fleet-api: edge-proxy health on http://{}/health",
        a.edge_proxy
    );
    let _ = writeln!(
        err,
        "fleet-api: node-agent health on https://{}/health (CA: {})",
        a.tls,
        a.ca_file.display()
    );
    for (host, addr) in &a.operators {
        let _ = writeln!(err, "fleet-api: {host} health on http://{addr}/health");
    }
    drop(err);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("fleet-api: stopping");
    fleet.shutdown(Duration::from_secs(3)).await;
    ExitCode::SUCCESS
}
