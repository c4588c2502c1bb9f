//! The shared state on PostgreSQL (`--state postgres://…`) against the faults of a server the
//! tests own: a network cut shorter and longer than the lock's lease, a server restart in the
//! middle of a run, a run taken over by a second controller while the first is cut off, and
//! TLS.
//!
//! Each test starts a throwaway cluster of its own (initdb into a temporary directory as the
//! `postgres` OS user, on a free port of 127.0.0.1), stopped with `pg_ctl stop -m immediate`
//! when the test ends, also when it fails. rollbook reaches it through a TCP proxy of the
//! test that can cut the network (drop every connection and refuse new ones, or black-hole
//! them: accept, and forward nothing, as a real cut looks) and restore it.
//!
//! Needs PostgreSQL's server binaries (`/usr/lib/postgresql/*/bin/initdb` and `psql`, Debian's
//! `postgresql` package) and root, as the tests run: the cluster runs as `postgres`, and the
//! takeover test puts its second controller on a host name of its own (`unshare --uts`), as a
//! second machine would be.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Ran, Running, wait_until};

// ---------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster.

/// The newest PostgreSQL server binaries on this machine.
fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "these tests start PostgreSQL clusters of their own and found no /usr/lib/postgresql/*/bin/initdb: \
             `apt-get install postgresql` (scripts/test-servers does when no PostgreSQL runs here)"
        )
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` as the `postgres` user when we are root (the server refuses to run as root).
fn as_postgres(program: &Path) -> StdCommand {
    if is_root() {
        let mut cmd = StdCommand::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir("/");
        cmd
    } else {
        StdCommand::new(program)
    }
}

/// Gives `path` to the `postgres` user when we are root.
fn give_to_postgres(path: &Path) {
    if is_root() {
        let status = StdCommand::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown postgres {}", path.display());
    }
}

/// A free TCP port on 127.0.0.1 (free when asked: the caller retries when it is taken since).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a TLS cluster serves.
struct ServerTls {
    cert_pem: String,
    key_pem: String,
}

/// A PostgreSQL cluster of the test's own on 127.0.0.1, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    root: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// initdb (trust for every user on loopback), then start on a free port. With `tls`, the
    /// server has ssl on with that certificate, and takes TCP connections over TLS only.
    fn start(tls: Option<&ServerTls>) -> Cluster {
        let bin = pg_bin();
        let root = tempfile::Builder::new()
            .prefix("rollbook-pg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        give_to_postgres(root.path());
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            root.path().display()
        );
        if let Some(tls) = tls {
            let dir = root.path().join("tls");
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("server.crt"), &tls.cert_pem).unwrap();
            std::fs::write(dir.join("server.key"), &tls.key_pem).unwrap();
            std::fs::set_permissions(
                dir.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
            give_to_postgres(&dir);
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n",
                d = dir.display()
            ));
            // TCP only over TLS: a run that got in used it.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
        }
        append(&data.join("postgresql.conf"), &conf);
        // A port found free may be taken by the time the server binds it: try another.
        for _ in 0..5 {
            let port = free_port();
            append(&data.join("postgresql.conf"), &format!("port = {port}\n"));
            let started = as_postgres(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(root.path().join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            if started.success() {
                return Cluster { bin, root, port };
            }
        }
        let log = std::fs::read_to_string(root.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start on 127.0.0.1:\n{log}");
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URL of its `postgres` database, straight to the server.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is ended, and the server is back when this
    /// returns.
    fn restart(&self) {
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.path().join("server.log"))
            .args(["-w", "-t", "60", "-m", "fast", "restart"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl restart failed");
    }

    /// The rows of `sql` (run as `postgres`, straight to the server), each as its fields.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = StdCommand::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-0", "-F", "\x1f"])
            .args(["-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-d", "postgres", "-p", &self.port.to_string(), "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_terminator('\0')
            .map(|row| row.split('\x1f').map(str::to_string).collect())
            .collect()
    }

    /// One value.
    fn value(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone()
    }

    /// The one run the database has, once it has one.
    fn run_id(&self) -> String {
        let mut id = None;
        poll(Duration::from_secs(60), "the run in the database", || {
            if self.tables_exist() {
                id = self
                    .query("SELECT run_id FROM rollbook_runs")
                    .pop()
                    .map(|r| r[0].clone());
            }
            id.is_some()
        });
        id.unwrap()
    }

    fn tables_exist(&self) -> bool {
        self.value("SELECT to_regclass('rollbook_runs') IS NOT NULL") == "t"
    }

    /// The shared journal of `run`: (seq, token, line) in order of seq.
    fn events(&self, run: &str) -> Vec<(i64, i64, String)> {
        self.query(&format!(
            "SELECT seq, token, line FROM rollbook_events WHERE run_id = '{run}' ORDER BY seq"
        ))
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap(), r[2].clone()))
        .collect()
    }

    /// The tokens of the run's controllers, in order.
    fn controllers(&self, run: &str) -> Vec<i64> {
        self.query(&format!(
            "SELECT token FROM rollbook_controllers WHERE run_id = '{run}' ORDER BY token"
        ))
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
    }

    /// Whether any lock's lease is live, as the database counts.
    fn live_locks(&self) -> bool {
        self.value("SELECT count(*) FROM rollbook_locks WHERE expires_at > clock_timestamp()")
            != "0"
    }

    /// A node's log as the shared store has it.
    fn log(&self, run: &str, phase: &str, node: &str) -> String {
        self.value(&format!(
            "SELECT coalesce(convert_from(string_agg(chunk, ''::bytea ORDER BY \"offset\"), 'UTF8'), '')
               FROM rollbook_logs WHERE run_id = '{run}' AND phase = '{phase}' AND node = '{node}'"
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
        let stopped = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped && let Some(pid) = pid.filter(|p| *p > 1) {
            // SAFETY: kill(2) on the postmaster this cluster started (its own pid file).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Waits up to `limit` for `ready`, asking every 100 ms (it may ask the database).
fn poll(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// A network between rollbook and the server that can be cut.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    /// Bytes flow.
    Up,
    /// Connections are accepted and kept, and nothing is forwarded either way: what was sent
    /// waits, as it would in a real cut, and flows when the link is back up.
    BlackHole,
    /// Every connection is dropped, and a new one is closed as soon as it is accepted.
    Down,
}

struct Net {
    link: Mutex<Link>,
    changed: Condvar,
    conns: Mutex<HashMap<u64, [TcpStream; 2]>>,
    closing: AtomicBool,
}

impl Net {
    /// Waits while the link is black-holed; `false` when the connection must end.
    fn pass(&self) -> bool {
        let mut link = self.link.lock().unwrap();
        loop {
            if self.closing.load(Ordering::SeqCst) {
                return false;
            }
            match *link {
                Link::Up => return true,
                Link::Down => return false,
                Link::BlackHole => link = self.changed.wait(link).unwrap(),
            }
        }
    }

    fn drop_all(&self) {
        for [a, b] in self.conns.lock().unwrap().values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP proxy on 127.0.0.1 to one server.
struct Proxy {
    port: u16,
    net: Arc<Net>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let net = Arc::new(Net {
            link: Mutex::new(Link::Up),
            changed: Condvar::new(),
            conns: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
        });
        let accept = {
            let net = net.clone();
            std::thread::spawn(move || {
                let next = AtomicU64::new(0);
                for client in listener.incoming() {
                    if net.closing.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    {
                        // Under the link's lock: a cut either sees this connection or came
                        // before it.
                        let link = net.link.lock().unwrap();
                        if *link == Link::Down {
                            continue;
                        }
                        let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
                            continue;
                        };
                        net.conns.lock().unwrap().insert(id, [c, s]);
                    }
                    let net = net.clone();
                    std::thread::spawn(move || serve(&net, id, client, server));
                }
            })
        };
        Proxy {
            port,
            net,
            accept: Some(accept),
        }
    }

    fn set(&self, to: Link) {
        let mut link = self.net.link.lock().unwrap();
        *link = to;
        self.net.changed.notify_all();
        if to == Link::Down {
            self.net.drop_all();
        }
    }

    /// Cuts the network: every connection dropped, new ones closed at once.
    fn down(&self) {
        self.set(Link::Down);
    }

    /// Cuts the network as a real cut looks: nothing answers, nothing fails.
    fn black_hole(&self) {
        self.set(Link::BlackHole);
    }

    fn restore(&self) {
        self.set(Link::Up);
    }

    /// A URL to the server through the proxy.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.net.closing.store(true, Ordering::SeqCst);
        self.net.changed.notify_all();
        self.net.drop_all();
        // Wakes the accepting thread, which sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Forwards one connection both ways until either side ends it or the link goes down.
fn serve(net: &Net, id: u64, client: TcpStream, server: TcpStream) {
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        std::thread::scope(|scope| {
            scope.spawn(|| pump(net, c, s));
            pump(net, server, client);
        });
    }
    net.conns.lock().unwrap().remove(&id);
}

fn pump(net: &Net, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !net.pass() {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        if !net.pass() || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------
// rollbook, its plans and its journals.

/// A directory the test works in: the plan, the files the steps touch, and each
/// controller's home (its `.rollbook`).
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        Work { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A controller's working directory (a machine of its own, as far as the local copies
    /// go).
    fn home(&self, name: &str) -> PathBuf {
        let home = self.path(name);
        std::fs::create_dir_all(&home).unwrap();
        home
    }

    /// Writes `NAME.yaml` (`version`, `name`, then `body`) and says where it is.
    fn plan(&self, name: &str, body: &str) -> String {
        let path = self.path(&format!("{name}.yaml"));
        std::fs::write(&path, format!("version: 1\nname: {name}\n{body}")).unwrap();
        path.display().to_string()
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    /// The lines of a file the steps append to.
    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// `rollbook` in `home` on the shared store at `url`, tables created on first use.
fn rollbook(home: &Path, url: &str, lease: &str) -> StdCommand {
    let mut cmd = crate::rollbook_command(home);
    with_state(&mut cmd, url, lease);
    cmd
}

fn with_state<'a>(cmd: &'a mut StdCommand, url: &str, lease: &str) -> &'a mut StdCommand {
    cmd.env("ROLLBOOK_STATE", url)
        .env("ROLLBOOK_STATE_INIT", "1")
        .env("ROLLBOOK_STATE_LEASE", lease)
}

/// Runs `cmd` to its end (at most two minutes).
fn finish(cmd: &mut StdCommand) -> Ran {
    Watched::spawn(cmd).finish(Duration::from_secs(120))
}

/// A `rollbook` in the background whose output is read as it comes.
struct Watched {
    running: Running,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

impl Watched {
    fn spawn(cmd: &mut StdCommand) -> Watched {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut running = Running::spawn(cmd);
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(running.stdout.take().unwrap(), stdout.clone()),
            collect(running.stderr.take().unwrap(), stderr.clone()),
        ];
        Watched {
            running,
            stdout,
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the end (at most `limit`: then the process is killed and the test fails).
    fn finish(mut self, limit: Duration) -> Ran {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.running.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < limit,
                "rollbook did not end within {limit:?}; its stderr so far:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ran {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr(),
        }
    }
}

/// The local copy of `run`'s journal in `home`, for the state at 127.0.0.1:`port`.
fn local_journal(home: &Path, port: u16, run: &str) -> PathBuf {
    local_run(home, port, run).join("journal.jsonl")
}

fn local_run(home: &Path, port: u16, run: &str) -> PathBuf {
    home.join(".rollbook/shared")
        .join(format!("127.0.0.1-{port}-postgres"))
        .join("runs")
        .join(run)
}

/// A journal's event lines, as written (a line still being written is not one yet).
fn lines_of(journal: &Path) -> Vec<String> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .map(|l| l.trim_end_matches(['\n', '\r']).to_string())
        .collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Where the first event of `kind` (for `node`, when given) is.
fn find(events: &[Value], kind: &str, node: Option<&str>) -> Option<usize> {
    events
        .iter()
        .position(|e| e["event"] == kind && node.is_none_or(|n| e["node"] == n))
}

fn started(lines: &[String], node: &str) -> bool {
    find(&parse(lines), "attempt_started", Some(node)).is_some()
}

/// The shared journal is the local copy, line for line: seq 1..n, each once, in order.
#[track_caller]
fn assert_same_journal(pg: &Cluster, run: &str, journal: &Path) {
    let local = lines_of(journal);
    let shared = pg.events(run);
    let seqs: Vec<i64> = shared.iter().map(|r| r.0).collect();
    let want: Vec<i64> = (1..=local.len() as i64).collect();
    assert_eq!(seqs, want, "the shared journal's seq");
    for (i, (row, line)) in shared.iter().zip(&local).enumerate() {
        assert_eq!(&row.2, line, "event {} differs", i + 1);
    }
}

/// The local copy is complete and the shared one has every line of it.
fn shipped(pg: &Cluster, run: &str, journal: &Path) -> bool {
    pg.events(run).len() == lines_of(journal).len()
}

/// A plan of steps a → b → … in a chain, each a shell command, and `finally` commands.
fn chain(steps: &[(&str, String)], finally: &[(&str, String)]) -> String {
    let mut body = String::from("steps:\n");
    let mut previous: Option<&str> = None;
    for (id, run) in steps {
        body.push_str(&format!("  - id: {id}\n"));
        if let Some(p) = previous {
            body.push_str(&format!("    needs: [{p}]\n"));
        }
        body.push_str(&format!("    shell: {{ run: {} }}\n", yaml_quote(run)));
        previous = Some(id);
    }
    if !finally.is_empty() {
        body.push_str("finally:\n");
        for (id, run) in finally {
            body.push_str(&format!(
                "  - id: {id}\n    shell: {{ run: {} }}\n",
                yaml_quote(run)
            ));
        }
    }
    body
}

fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A shell command that records the step in `ran` and waits for the file `gate`.
fn gated(step: &str, ran: &Path, gate: &Path) -> String {
    format!(
        "echo {step} >> {}; echo {step} waits; until [ -f {} ]; do sleep 0.05; done; echo {step} goes on",
        ran.display(),
        gate.display()
    )
}

fn records(step: &str, ran: &Path) -> String {
    format!("echo {step} >> {}", ran.display())
}

// ---------------------------------------------------------------------------------------
// The tests.

/// A cut shorter than the lease (2 s of 6 s) while a step runs and the next one starts: the
/// run goes on and succeeds, says the shared copy fell behind and caught up, and the shared
/// journal ends as the local copy, line for line.
#[test]
fn a_cut_shorter_than_the_lease_leaves_the_run_going_and_the_shared_copy_catches_up() {
    let pg = Cluster::start(None);
    let proxy = Proxy::start(pg.addr());
    let work = Work::new();
    let home = work.home("a");
    let ran = work.path("ran");
    let plan = work.plan(
        "short-cut",
        &chain(
            &[
                ("a", records("a", &ran)),
                ("b", gated("b", &ran, &work.path("go-b"))),
                ("c", gated("c", &ran, &work.path("go-c"))),
                ("d", records("d", &ran)),
            ],
            &[],
        ),
    );
    let run = Watched::spawn(rollbook(&home, &proxy.url(), "6s").args([
        "run",
        &plan,
        "--reason",
        "short cut",
    ]));
    let id = pg.run_id();
    let journal = local_journal(&home, proxy.port, &id);
    poll(Duration::from_secs(60), "b to run, shipped", || {
        started(&lines_of(&journal), "b") && shipped(&pg, &id, &journal)
    });

    let cut = Instant::now();
    proxy.down();
    // b ends and c starts while the database cannot be reached: the shipper's first try
    // fails at once (the connection is closed), and the run says so. (Each takes a few
    // milliseconds; a machine slow enough to take the lease's 6 s here fails the test with
    // the lease lapsed.)
    work.touch("go-b");
    wait_until(Duration::from_secs(60), "c to start during the cut", || {
        started(&lines_of(&journal), "c")
    });
    wait_until(
        Duration::from_secs(60),
        "the run to say the shared copy is behind",
        || run.stderr().contains("the shared copy is behind"),
    );
    // The cut lasts 2 s, a third of the lease.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(cut.elapsed()));
    proxy.restore();
    wait_until(
        Duration::from_secs(30),
        "the run to say the shared copy caught up",
        || run.stderr().contains("the shared copy has caught up"),
    );
    work.touch("go-c");

    let out = run.finish(Duration::from_secs(120));
    out.assert_code(0);
    assert!(!out.stderr.contains("lapsed"), "{}", out.stderr);
    assert!(!out.stderr.contains("events behind"), "{}", out.stderr);
    assert_eq!(work.lines("ran"), ["a", "b", "c", "d"]);
    assert_same_journal(&pg, &id, &journal);
    // b's output too, as this machine logged it.
    let log = std::fs::read_to_string(local_run(&home, proxy.port, &id).join("logs/steps/b.log"))
        .unwrap();
    assert!(log.contains("b goes on"), "{log}");
    assert_eq!(pg.log(&id, "steps", "b"), log);
}

/// A black-hole cut longer than the lease (3 s) while step b of a..e runs: nothing after b
/// starts, b finishes, `finally` runs, the run ends cancelled saying why and how to go on.
/// Once the network is back, `state sync` sends the rest, and a resume from another
/// directory runs c, d, e and not a or b again.
#[test]
fn a_cut_longer_than_the_lease_stops_the_run_and_resume_goes_on_after_sync() {
    let pg = Cluster::start(None);
    let proxy = Proxy::start(pg.addr());
    let work = Work::new();
    let home = work.home("a");
    let ran = work.path("ran");
    let plan = work.plan(
        "long-cut",
        &chain(
            &[
                ("a", records("a", &ran)),
                ("b", gated("b", &ran, &work.path("go"))),
                ("c", records("c", &ran)),
                ("d", records("d", &ran)),
                ("e", records("e", &ran)),
            ],
            &[("f", records("f", &ran))],
        ),
    );
    let run = Watched::spawn(
        rollbook(&home, &proxy.url(), "3s").args(["run", &plan, "--reason", "long cut"]),
    );
    let id = pg.run_id();
    let journal = local_journal(&home, proxy.port, &id);
    poll(Duration::from_secs(60), "b to run, shipped", || {
        started(&lines_of(&journal), "b") && shipped(&pg, &id, &journal)
    });

    proxy.black_hole();
    wait_until(Duration::from_secs(60), "the lease to lapse", || {
        find(&parse(&lines_of(&journal)), "cancelling", None).is_some()
    });
    // b has outlived the lease: now it ends.
    work.touch("go");
    let out = run.finish(Duration::from_secs(120));
    out.assert_code(3);
    let resume = format!("rollbook resume {id}");
    assert!(out.stderr.contains("lapsed"), "{}", out.stderr);
    assert!(out.stderr.contains(&resume), "{}", out.stderr);

    let local = lines_of(&journal);
    let events = parse(&local);
    let cancelling = find(&events, "cancelling", None).unwrap();
    let reason = events[cancelling]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("lapsed") && reason.contains(&resume),
        "{reason}"
    );
    let b_started = find(&events, "attempt_started", Some("b")).unwrap();
    let b_finished = find(&events, "attempt_finished", Some("b")).unwrap();
    assert!(
        b_started < cancelling && cancelling < b_finished,
        "{local:#?}"
    );
    assert_eq!(events[b_finished]["ok"], true);
    for node in ["c", "d", "e"] {
        assert!(!started(&local, node), "{node} started after the lapse");
    }
    let f = find(&events, "attempt_started", Some("f")).unwrap();
    assert_eq!(events[f]["phase"], "finally");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert_eq!(events.last().unwrap()["status"], "cancelled");
    assert_eq!(work.lines("ran"), ["a", "b", "f"]);
    let pg_before_sync = pg.events(&id).len();
    assert!(pg_before_sync < local.len(), "the shared copy is behind");

    // The network is back: `state sync` sends the rest.
    proxy.restore();
    let sync = finish(rollbook(&home, &proxy.url(), "3s").args(["state", "sync"]));
    sync.assert_code(0);
    let unsent = local.len() - pg_before_sync;
    assert!(
        sync.stderr.contains(&format!("{id}: sent {unsent} events")),
        "{}",
        sync.stderr
    );
    assert_same_journal(&pg, &id, &journal);

    // From another directory, on the same database: c, d, e run, a and b do not.
    poll(
        Duration::from_secs(30),
        "the lapsed lease to expire",
        || !pg.live_locks(),
    );
    let other = work.home("b");
    let resumed = finish(rollbook(&other, &proxy.url(), "15s").args(["resume", &id, "--yes"]));
    resumed.assert_code(0);
    assert_eq!(work.lines("ran"), ["a", "b", "f", "c", "d", "e", "f"]);
    let other_journal = local_journal(&other, proxy.port, &id);
    assert_same_journal(&pg, &id, &other_journal);
    let all = parse(&lines_of(&other_journal));
    assert_eq!(all.last().unwrap()["status"], "succeeded");
}

/// `pg_ctl restart -m fast` while a step runs (the lease at its default 15 s): the run goes
/// on and succeeds, and the shared journal is the local copy, each event once, in order.
#[test]
fn a_server_restart_mid_run_loses_and_doubles_nothing() {
    let pg = Cluster::start(None);
    let work = Work::new();
    let home = work.home("a");
    let ran = work.path("ran");
    let ticks = format!(
        "i=0; until [ -f {} ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; echo b >> {}",
        work.path("go-b").display(),
        ran.display()
    );
    let plan = work.plan(
        "restart",
        &chain(
            &[
                ("a", records("a", &ran)),
                ("b", ticks),
                ("c", gated("c", &ran, &work.path("go-c"))),
                ("d", records("d", &ran)),
            ],
            &[],
        ),
    );
    let run = Watched::spawn(
        rollbook(&home, &pg.url(), "15s").args(["run", &plan, "--reason", "restart"]),
    );
    let id = pg.run_id();
    let journal = local_journal(&home, pg.port, &id);
    poll(Duration::from_secs(60), "b to run, shipped", || {
        started(&lines_of(&journal), "b") && shipped(&pg, &id, &journal)
    });
    let before = pg.value("SELECT pg_postmaster_start_time()");

    // b ends and c starts while the server goes down and comes back.
    let restart = std::thread::scope(|scope| {
        let restarting = scope.spawn(|| pg.restart());
        work.touch("go-b");
        wait_until(Duration::from_secs(60), "c to start", || {
            started(&lines_of(&journal), "c")
        });
        restarting.join()
    });
    assert!(restart.is_ok(), "the restart failed");
    assert_ne!(pg.value("SELECT pg_postmaster_start_time()"), before);
    // The lease is renewed on the server that came back (every third of it).
    poll(
        Duration::from_secs(30),
        "the lease to be renewed after the restart",
        || {
            pg.value(
                "SELECT count(*) FROM rollbook_locks
                  WHERE expires_at > pg_postmaster_start_time() + interval '15 seconds'",
            ) == "1"
        },
    );
    poll(
        Duration::from_secs(60),
        "the shared copy to catch up",
        || shipped(&pg, &id, &journal),
    );
    work.touch("go-c");

    let out = run.finish(Duration::from_secs(120));
    out.assert_code(0);
    assert!(!out.stderr.contains("events behind"), "{}", out.stderr);
    assert_eq!(work.lines("ran"), ["a", "b", "c", "d"]);
    assert_same_journal(&pg, &id, &journal);
    // b's output too, as this machine logged it.
    let log =
        std::fs::read_to_string(local_run(&home, pg.port, &id).join("logs/steps/b.log")).unwrap();
    assert!(log.contains("tick 0"), "{log}");
    assert_eq!(pg.log(&id, "steps", "b"), log);
}

/// Controller A is cut off (a black hole, lease 3 s) and lapses while a long step is still
/// in flight; controller B, on another machine with the database in reach, resumes the run
/// once A's lease has expired and takes the lock with a larger token. When A's network is
/// back, its late events are refused and it says so; the shared journal has only B's events
/// after the takeover, and `state sync` on A's machine says what it could not send (exit 5)
/// and changes nothing.
#[test]
fn a_controller_taken_over_while_cut_off_has_its_late_events_refused() {
    let pg = Cluster::start(None);
    let proxy = Proxy::start(pg.addr());
    let work = Work::new();
    let home_a = work.home("a");
    let home_b = work.home("b");
    let ran = work.path("ran");
    // b waits for a gate of its machine's own: A's is opened by the test, B's is open.
    let b = format!(
        "echo b-$(hostname) >> {}; until [ -f {}-$(hostname) ]; do sleep 0.05; done",
        ran.display(),
        work.path("go").display()
    );
    let plan = work.plan(
        "takeover",
        &chain(
            &[
                ("a", records("a", &ran)),
                ("b", b),
                ("c", records("c", &ran)),
                ("d", records("d", &ran)),
                ("e", records("e", &ran)),
            ],
            &[("f", records("f", &ran))],
        ),
    );
    let here = rollbook_exec::process::machine_name().expect("a host name");
    assert_ne!(here, "rollbook-b");
    work.touch("go-rollbook-b");

    let a = Watched::spawn(
        rollbook(&home_a, &proxy.url(), "3s").args(["run", &plan, "--reason", "takeover"]),
    );
    let id = pg.run_id();
    let journal_a = local_journal(&home_a, proxy.port, &id);
    poll(Duration::from_secs(60), "b to run, shipped", || {
        started(&lines_of(&journal_a), "b") && shipped(&pg, &id, &journal_a)
    });
    let shipped_by_a = pg.events(&id);

    proxy.black_hole();
    wait_until(Duration::from_secs(60), "A's lease to lapse", || {
        find(&parse(&lines_of(&journal_a)), "cancelling", None).is_some()
    });
    poll(Duration::from_secs(30), "A's lease to expire", || {
        !pg.live_locks()
    });

    // B, another machine that reaches the server, resumes the run while A's b still runs.
    let mut resume_b = StdCommand::new("unshare");
    crate::clean_env(&mut resume_b)
        .current_dir(&home_b)
        .args(["--uts", "--", "sh", "-c", r#"hostname "$0" && exec "$@""#])
        .arg("rollbook-b")
        .arg(assert_cmd::cargo::cargo_bin("rollbook"))
        .args(["resume", &id, "--yes"]);
    with_state(&mut resume_b, &pg.url(), "15s");
    let by_b = finish(&mut resume_b);
    by_b.assert_code(0);
    let tokens = pg.controllers(&id);
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    let (token_a, token_b) = (tokens[0], tokens[1]);
    assert!(token_b > token_a);
    let journal_b = local_journal(&home_b, pg.port, &id);
    assert_same_journal(&pg, &id, &journal_b);
    let shared = pg.events(&id);
    assert_eq!(&shared[..shipped_by_a.len()], &shipped_by_a[..]);
    assert!(
        shared[shipped_by_a.len()..].iter().all(|r| r.1 == token_b),
        "{shared:#?}"
    );

    // A's network is back, and its b ends: its late events are refused, and it says so.
    proxy.restore();
    work.touch(&format!("go-{here}"));
    let out = a.finish(Duration::from_secs(120));
    out.assert_code(3);
    assert!(out.stderr.contains("lapsed"), "{}", out.stderr);
    assert!(out.stderr.contains("taken over"), "{}", out.stderr);
    assert_eq!(
        pg.events(&id),
        shared,
        "A's late events reached the shared journal"
    );
    let local_a = lines_of(&journal_a);
    assert!(local_a.len() > shipped_by_a.len());
    for node in ["c", "d", "e"] {
        assert!(
            !started(&local_a, node),
            "{node} started on A after the lapse"
        );
    }
    // B ran b again (A's had no end in the shared journal) and went on; A ran only its
    // `finally` after the lapse, once its b ended.
    let b_here = format!("b-{here}");
    assert_eq!(
        work.lines("ran"),
        [
            "a",
            b_here.as_str(),
            "b-rollbook-b",
            "c",
            "d",
            "e",
            "f",
            "f"
        ]
    );

    // `state sync` on A's machine: what it could not send stays there, said so.
    let sync = finish(rollbook(&home_a, &proxy.url(), "3s").args(["state", "sync"]));
    sync.assert_code(5);
    let unsent = format!("events {}–{} of", shipped_by_a.len() + 1, local_a.len());
    assert!(
        sync.stderr.contains(&format!("{id}: not sent"))
            && sync.stderr.contains("taken over")
            && sync.stderr.contains(&unsent),
        "{}",
        sync.stderr
    );
    assert_eq!(pg.events(&id), shared);
}

/// A test CA named `ca_name` and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    server: ServerTls,
}

impl Pki {
    fn new(ca_name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &*ca).unwrap();
        Pki {
            ca_pem: ca.pem(),
            server: ServerTls {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        }
    }
}

/// TLS: `sslmode=verify-full` with the CA that signed the server's certificate works (and
/// the server takes nothing but TLS); with another CA it fails with a clear message, exit
/// 5; `sslmode=require` against a server without TLS fails too.
#[test]
fn tls_verifies_the_server_against_the_ca_named_in_the_url() {
    let pki = Pki::new("rollbook test CA");
    let other = Pki::new("another test CA");
    let pg = Cluster::start(Some(&pki.server));
    let work = Work::new();
    let home = work.home("a");
    std::fs::write(work.path("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(work.path("other-ca.pem"), &other.ca_pem).unwrap();
    let plan = work.plan(
        "tls",
        &chain(&[("a", records("a", &work.path("ran")))], &[]),
    );
    let url = |ca: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            work.path(ca).display()
        )
    };

    let ok = finish(rollbook(&home, &url("ca.pem"), "15s").args(["run", &plan, "--reason", "tls"]));
    ok.assert_code(0);
    let id = pg.run_id();
    assert_same_journal(&pg, &id, &local_journal(&home, pg.port, &id));

    let refused = finish(rollbook(&home, &url("other-ca.pem"), "15s").args([
        "run",
        &plan,
        "--reason",
        "tls, another CA",
    ]));
    refused.assert_code(5);
    assert!(
        refused
            .stderr
            .contains(&format!("the shared state at {}", pg.url()))
            && refused.stderr.to_lowercase().contains("certificate"),
        "{}",
        refused.stderr
    );
    assert_eq!(work.lines("ran"), ["a"]);

    // Without TLS on the server, `require` does not go on in the clear.
    let plain = Cluster::start(None);
    let required = finish(
        rollbook(&home, &format!("{}?sslmode=require", plain.url()), "15s").args([
            "run",
            &plan,
            "--reason",
            "tls required",
        ]),
    );
    required.assert_code(5);
    let said = required.stderr.to_lowercase();
    assert!(
        said.contains(&format!("the shared state at {}", plain.url()))
            && (said.contains("tls") || said.contains("ssl")),
        "{}",
        required.stderr
    );
    assert_eq!(work.lines("ran"), ["a"]);
}
