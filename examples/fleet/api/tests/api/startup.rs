//! Starting and stopping: a taken port fails the start naming it; the real binary prints
//! `ready`, serves, and exits 0 on SIGTERM, or exits 1 with the reason.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::{fleet_json, write_fleet};

#[tokio::test]
async fn a_taken_api_port_fails_the_start_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet_json(100);
    config["api"]["port"] = json!(port);
    write_fleet(dir.path(), &config);

    let err = rollbook_fleet_api::start(dir.path()).await.err().unwrap();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "127.0.0.1:{port} is in use: is another fleet running?"
        )),
        "{message}"
    );
    assert!(message.contains("the platform API"), "{message}");
}

#[tokio::test]
async fn a_taken_operator_address_fails_the_start_naming_the_host() {
    let taken = TcpListener::bind("127.0.9.2:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet_json(100);
    config["api"]["operator_port"] = json!(port);
    write_fleet(dir.path(), &config);

    let message = rollbook_fleet_api::start(dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(&format!("127.0.9.2:{port} is in use")),
        "{message}"
    );
    assert!(message.contains("us-east-op-2's /health"), "{message}");

    // Everything bound before the failure was let go: the same ports can be bound again.
    drop(taken);
    let fleet = rollbook_fleet_api::start(dir.path()).await.unwrap();
    assert_eq!(fleet.addrs().operators[1].1.port(), port);
}

#[tokio::test]
async fn a_missing_or_broken_fleet_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let message = rollbook_fleet_api::start(dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("cannot read ") && message.contains("fleet.json"),
        "{message}"
    );

    let mut config = fleet_json(100);
    config["api"]["health_ports"] = json!([8081]);
    std::fs::write(dir.path().join("fleet.json"), config.to_string()).unwrap();
    let message = rollbook_fleet_api::start(dir.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("fleet.json: invalid length 1"),
        "{message}"
    );
}

/// The binary, with a thread per output stream sending its lines.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn run_binary(dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-api"))
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    /// Waits for the exit for up to a minute (then kills it and fails).
    fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("fleet-api did not exit");
    }

    fn stderr_until(&self, wanted: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("no stderr line with {wanted:?}: {e}"));
            if line.contains(wanted) {
                return line;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn the_binary_prints_ready_serves_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), &fleet_json(100));
    let mut running = run_binary(dir.path());
    let first = running.stdout.recv_timeout(Duration::from_secs(30));
    assert_eq!(first.as_deref(), Ok("ready"));

    let line = running.stderr_until("platform API on http://");
    let url = line.split("on ").nth(1).unwrap().to_string();
    let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    let a = crate::answer(crate::client(&ca).get(format!("{url}/health"))).await;
    assert_eq!((a.status, a.body.as_str()), (200, "healthy"));
    let logged = running.stderr_until("GET /health");
    assert_eq!(logged, "api GET /health -> 200");

    let pid = running.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert_eq!(running.exit_code(), Some(0));
}

#[tokio::test]
async fn the_binary_exits_1_with_the_reason_when_a_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fleet_json(100);
    config["api"]["tls_port"] = json!(port);
    write_fleet(dir.path(), &config);

    let mut running = run_binary(dir.path());
    assert_eq!(running.exit_code(), Some(1));
    let message = running.stderr_until("is in use");
    assert!(
        message.starts_with(&format!(
            "fleet-api: 127.0.0.1:{port} is in use: is another fleet running?"
        )),
        "{message}"
    );
    assert!(
        running.stdout.recv_timeout(Duration::from_secs(5)).is_err(),
        "no `ready` before the failure"
    );
}
