//! Failing to connect: a refused connection and a refused login each get a message that
//! names the host, and never the password.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::*;

/// A loopback port that refuses connections, reserved while the socket lives: bound, never
/// listening (a port found by binding and closing a listener could be taken by another test
/// in the meantime).
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

#[tokio::test]
async fn a_refused_connection_names_the_host_and_hides_the_password() {
    let (_reserved, port) = closed_port();
    for (scheme, product) in [("postgres", "PostgreSQL"), ("mysql", "MySQL")] {
        let url = format!("{scheme}://app:Sup3rSecretPw@127.0.0.1:{port}/db");
        let ran = run(&SqlRunner::new(), one(&url, "SELECT 1")).await;
        assert_eq!(
            ran.failure(),
            format!(
                "cannot connect to {product} at 127.0.0.1:{port}: connection refused (is the server running and listening on 127.0.0.1:{port}?)"
            )
        );
        let check = SqlRunner::new()
            .check(&Action::Sql(one(&url, "SELECT 1")))
            .await
            .unwrap_err();
        assert!(!check.contains("Sup3rSecretPw"), "{check}");
    }
}

#[tokio::test]
async fn a_wrong_password_on_mariadb_names_the_host_and_user_not_the_password() {
    let db = TestDb::mysql("pw").await;
    let user = format!("{}_u", db.name);
    for host in ["%", "localhost", "127.0.0.1"] {
        db.exec(&format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY 'right-Pw-4821'; GRANT ALL ON {}.* TO '{user}'@'{host}'", db.name))
            .await;
    }
    let _users = DropUsers(db.url.clone(), user.clone());
    let authority = db.url.split('@').nth(1).unwrap().to_string();
    let url_with = |pw: &str| format!("mysql://{user}:{pw}@{authority}");

    // The user works with its password, so a refusal below is about the password.
    let ran = run(
        &SqlRunner::new(),
        one(&url_with("right-Pw-4821"), "SELECT 1 AS one"),
    )
    .await;
    assert_eq!(ran.result()["rows"], serde_json::json!([{ "one": 1 }]));

    let ran = run(
        &SqlRunner::new(),
        one(&url_with("wrong-Pw-7713"), "SELECT 1"),
    )
    .await;
    let message = ran.failure();
    let host = authority.split('/').next().unwrap();
    assert!(
        message.starts_with(&format!(
            "MySQL at {host} refused the login of user `{user}`: Access denied"
        )),
        "{message}"
    );
    assert!(
        message.contains("(check the user and password in the URL)"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-Pw-7713") && !message.contains("right-Pw"),
        "{message}"
    );
}

/// Drops the MariaDB users of a test.
struct DropUsers(String, String);

impl Drop for DropUsers {
    fn drop(&mut self) {
        let (url, user) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for host in ["%", "localhost", "127.0.0.1"] {
                    let _ = super::admin_exec(
                        Server::MySql,
                        &url,
                        &format!("DROP USER IF EXISTS '{user}'@'{host}'"),
                    )
                    .await;
                }
            })
        })
        .join();
    }
}

/// The local PostgreSQL trusts loopback (scripts/test-servers sets it up so), so it accepts
/// any password. The refusal is therefore played by a stand-in that speaks the PostgreSQL
/// protocol exactly as a server does when the password is wrong: it asks for the password,
/// reads it, and answers `FATAL 28P01 password authentication failed`.
#[tokio::test]
async fn a_wrong_password_on_postgres_names_the_host_and_user_not_the_password() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut startup = read_startup(&mut s).await;
        if startup.len() == 4 && startup == 80877103u32.to_be_bytes() {
            s.write_all(b"N").await.unwrap(); // no TLS here
            startup = read_startup(&mut s).await;
        }
        // AuthenticationCleartextPassword
        s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.unwrap();
        let mut tag = [0u8; 1];
        s.read_exact(&mut tag).await.unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.unwrap();
        let mut password = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut password).await.unwrap();
        let mut fields = Vec::new();
        for (k, v) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28P01"),
            (b'M', "password authentication failed for user \"app\""),
        ] {
            fields.push(k);
            fields.extend_from_slice(v.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        msg.extend_from_slice(&fields);
        s.write_all(&msg).await.unwrap();
        (
            String::from_utf8_lossy(&startup).into_owned(),
            tag[0],
            password,
        )
    });
    let url = format!("postgres://app:Wr0ng-Pw-5150@127.0.0.1:{port}/db");
    let ran = run(&SqlRunner::new(), one(&url, "SELECT 1")).await;
    assert_eq!(
        ran.failure(),
        format!(
            "PostgreSQL at 127.0.0.1:{port} refused the login of user `app`: password authentication failed for user \"app\" (check the user and password in the URL)"
        )
    );
    let (startup, tag, password) = server.await.unwrap();
    assert!(startup.contains("app"), "{startup:?}");
    // The password did go to the server (that is how it was refused), just not into the message.
    assert_eq!((tag, password.as_slice()), (b'p', &b"Wr0ng-Pw-5150\0"[..]));
}

/// A startup-phase message: a length (which counts itself) and a body.
async fn read_startup(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut body).await.unwrap();
    body
}

/// The same against a real server that asks for the password: `ROLLBOOK_TEST_PG_PASSWORD_URL`
/// names a role that must give its password (`scripts/test-servers` provides one, on a cluster
/// of its own when the main server trusts everyone). The right password gets in, so a refusal
/// below is about the password.
#[tokio::test]
async fn a_wrong_password_on_the_real_postgres_is_refused() {
    let url = std::env::var("ROLLBOOK_TEST_PG_PASSWORD_URL").unwrap_or_else(|_| {
        panic!(
            "ROLLBOOK_TEST_PG_PASSWORD_URL is not set: it names a PostgreSQL role that must give \
             its password. `source scripts/test-servers` sets it (scripts/test does it for you)."
        )
    });
    let (userinfo, authority) = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.split_once('@'))
        .unwrap_or_else(|| {
            panic!("ROLLBOOK_TEST_PG_PASSWORD_URL is not postgres://USER:PW@HOST/DB")
        });
    let (user, right) = userinfo
        .split_once(':')
        .unwrap_or_else(|| panic!("ROLLBOOK_TEST_PG_PASSWORD_URL has no password"));
    let url_with = |pw: &str| format!("postgres://{user}:{pw}@{authority}");

    let ran = run(&SqlRunner::new(), one(&url_with(right), "SELECT 1 AS one")).await;
    assert_eq!(ran.result()["rows"], serde_json::json!([{ "one": 1 }]));

    let ran = run(
        &SqlRunner::new(),
        one(&url_with("wrong-Pw-7713"), "SELECT 1 AS one"),
    )
    .await;
    let message = ran.failure();
    let host = authority.split('/').next().unwrap();
    assert!(
        message.starts_with(&format!(
            "PostgreSQL at {host} refused the login of user `{user}`: password authentication failed"
        )),
        "{message}"
    );
    assert!(
        message.contains("(check the user and password in the URL)"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-Pw-7713") && !message.contains(right),
        "{message}"
    );
}
