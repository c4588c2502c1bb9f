//! rollbook's `http` step runner: one HTTP request per attempt, on reqwest and rustls.
//!
//! The executor owns everything around an attempt (retries, per-attempt timeouts, `until`
//! gates, captures, `expect.jq`); the runner sends the request, reads a bounded response,
//! checks `expect.status` and `expect.body_contains`, and returns the result document
//!
//! ```json
//! { "status": 200, "headers": { "content-type": "..." }, "body": "...", "json": null,
//!   "truncated": false, "elapsed_ms": 12 }
//! ```
//!
//! Limits, chosen so that one misbehaving endpoint cannot stall or exhaust a rollback: a
//! connect timeout of 10 s, at most 5 redirects (a loop is reported as one), and at most
//! 10 MiB of body kept (the rest is not read).

mod expect;
mod resolve;
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url, redirect};
use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, OutputSink, Runner, Stream};
use rollbook_plan::action::{Action, HttpBody, HttpRequest};
use serde_json::{Map, Value, json};

use crate::expect::{Expect, Seen};
use crate::resolve::{Addresses, Resolver};
use crate::tls::TlsKey;

/// The most body bytes kept in the result document. Health and API responses are small; a
/// bigger body is a mistake (a log file, a dump) that must not take the run's memory.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Redirects followed before the request fails.
pub const MAX_REDIRECTS: usize = 5;
/// Time allowed to open a connection (TCP and TLS). The step's `timeout` bounds the rest.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `check()` has no executor around it to time it out.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong while setting a client up (reading TLS files, building the client).
/// Request failures are not errors: they are [`Outcome::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A TLS file (`ca_file`, `client_cert`, `client_key`) could not be read.
    #[error("{what} `{path}`: {source}")]
    Read {
        /// Which file it is, as the plan calls it.
        what: &'static str,
        /// The path the plan gave.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A TLS file was read but holds no usable certificate or key.
    #[error("{what} `{path}`: {message}")]
    Pem {
        /// Which file it is, as the plan calls it.
        what: &'static str,
        /// The path the plan gave.
        path: String,
        /// What is wrong with its contents.
        message: String,
    },
    /// rustls refused the configuration (a key that does not match its certificate).
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest could not build a client with these settings.
    #[error("HTTP client setup: {0}")]
    Client(#[from] reqwest::Error),
}

/// A client and the TLS configuration it was built with (which `check()` reuses for a bare
/// handshake).
#[derive(Clone)]
struct Prepared {
    client: Client,
    tls: Arc<rustls::ClientConfig>,
}

/// The `http` runner. Keep one per run: it holds one client per distinct TLS setting, so
/// the requests of a run reuse their connections (a 200-node rollout polling one API opens
/// a handful of connections, not thousands).
#[derive(Default)]
pub struct HttpRunner {
    clients: Mutex<HashMap<TlsKey, Prepared>>,
    /// Inventory addresses of host names, shared by every client.
    addresses: Arc<Addresses>,
}

impl HttpRunner {
    /// A runner with no client yet: each is built when a request first needs its TLS setting.
    pub fn new() -> Self {
        HttpRunner::default()
    }

    /// The client for these TLS settings, built on first use. A failure is not cached: a CA
    /// file that appears later (or is fixed between retries) is read again.
    fn prepared(&self, tls: &rollbook_plan::action::Tls) -> Result<Prepared, Error> {
        let key = TlsKey::from(tls);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = clients.get(&key) {
            return Ok(p.clone());
        }
        let config = tls::client_config(tls)?;
        let client = Client::builder()
            .tls_backend_preconfigured(config.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(redirect_policy())
            .user_agent(concat!("rollbook/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Resolver(self.addresses.clone()))
            .build()?;
        let prepared = Prepared {
            client,
            tls: Arc::new(config),
        };
        clients.insert(key, prepared.clone());
        Ok(prepared)
    }

    /// One request: prepared, sent, its response read (bounded) and judged.
    async fn attempt(&self, req: &HttpRequest, out: &OutputSink) -> Outcome {
        let shown = shown_url(&req.url);
        let (client, request) = match self.request(req, &shown, out) {
            Ok(ready) => ready,
            Err(failed) => return failed,
        };
        match receive(&client, request, req, &shown, out).await {
            Ok(response) => response.judge(req),
            Err(failed) => failed,
        }
    }

    /// The request as it will be sent, with the client for its TLS settings; a request that
    /// cannot be built fails the attempt without anything sent.
    fn request(
        &self,
        req: &HttpRequest,
        shown: &str,
        out: &OutputSink,
    ) -> Result<(Client, reqwest::Request), Outcome> {
        let not_sent = |message: String| {
            out.line(
                Stream::Stderr,
                &format!("{} {shown} -> not sent", req.method),
            );
            Outcome::failed(message)
        };
        let url = Url::parse(&req.url).map_err(|e| {
            out.line(
                Stream::Stderr,
                &format!("{} {shown} -> invalid URL", req.method),
            );
            Outcome::failed(format!("invalid URL `{shown}`: {e}"))
        })?;
        self.learn_address(req, &url);
        // Also for an `http://` URL: a redirect may lead to `https://`, unverified.
        if req.tls.insecure {
            out.line(
                Stream::Stderr,
                &format!(
                    "warning: TLS certificate verification is OFF for {}",
                    url.host_str().unwrap_or("?")
                ),
            );
        }
        let prepared = self
            .prepared(&req.tls)
            .map_err(|e| not_sent(e.to_string()))?;
        let request = build_request(&prepared.client, req, url).map_err(not_sent)?;
        Ok((prepared.client, request))
    }

    /// The inventory places the URL's host at `req.address`: connect there.
    fn learn_address(&self, req: &HttpRequest, url: &Url) {
        if let (Some(address), Some(host)) = (&req.address, url.host_str()) {
            self.addresses.learn(host, address);
        }
    }

    async fn check_request(&self, req: &HttpRequest) -> Result<String, String> {
        let shown = shown_url(&req.url);
        let url = Url::parse(&req.url).map_err(|e| format!("invalid URL `{shown}`: {e}"))?;
        self.learn_address(req, &url);
        let prepared = self.prepared(&req.tls).map_err(|e| e.to_string())?;
        if req.method == "GET" || req.method == "HEAD" {
            // Safe to send: GET and HEAD change nothing. The body is not read.
            let method = if req.method == "HEAD" {
                Method::HEAD
            } else {
                Method::GET
            };
            let headers = header_values(&req.headers)?;
            let response = prepared
                .client
                .request(method, url)
                .headers(headers)
                .timeout(CHECK_TIMEOUT)
                .send()
                .await
                .map_err(|e| {
                    format!("{} {shown}: {}", req.method, describe(&e, req.tls.insecure))
                })?;
            let status = response.status().as_u16();
            // Reach is not enough when the credentials are refused: the run would fail.
            if status == 401 || status == 403 {
                return Err(format!(
                    "{} {shown}: reachable, but {status}: the server refused the request's credentials",
                    req.method
                ));
            }
            Ok(format!("reachable: {status}"))
        } else {
            tokio::time::timeout(CHECK_TIMEOUT, probe(&url, &prepared.tls, &self.addresses))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())))
                .map_err(|e| format!("{shown}: {e}"))?;
            Ok(format!(
                "reachable (not sent: {} changes state)",
                req.method
            ))
        }
    }
}

impl Runner for HttpRunner {
    fn kind(&self) -> &'static str {
        "http"
    }

    /// GET and HEAD are sent (they change nothing) and the status is reported (401 and 403
    /// are failures: the server is there but refuses the step's credentials); any other
    /// method is not sent: the host is resolved, connected to, and for `https` the TLS
    /// handshake is made with the step's TLS settings.
    fn check<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match action {
                Action::Http(req) => self.check_request(req).await,
                other => Err(format!("the http runner got a `{}` step", other.kind())),
            }
        })
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Action::Http(req) = action else {
                return Outcome::failed(format!("the http runner got a `{}` step", action.kind()));
            };
            // Dropping the request future closes its connection: a cancelled attempt leaves
            // nothing running behind it.
            tokio::select! {
                biased;
                _ = attempt.cancel.cancelled() => {
                    attempt.output.line(
                        Stream::Stderr,
                        &format!("{} {} -> cancelled", req.method, shown_url(&req.url)),
                    );
                    Outcome::failed("cancelled")
                }
                outcome = self.attempt(req, &attempt.output) => outcome,
            }
        })
    }
}

/// Follows up to [`MAX_REDIRECTS`] redirects; a URL seen before in the same chain is a loop,
/// reported with the chain rather than as "too many redirects".
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        if attempt.previous().iter().any(|u| u == attempt.url()) {
            let mut chain: Vec<String> = attempt
                .previous()
                .iter()
                .map(|u| shown_url(u.as_str()))
                .collect();
            chain.push(shown_url(attempt.url().as_str()));
            let err = RedirectError(format!("redirect loop: {}", chain.join(" -> ")));
            attempt.error(err)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            let last = shown_url(attempt.url().as_str());
            attempt.error(RedirectError(format!(
                "more than {MAX_REDIRECTS} redirects (the last to {last})"
            )))
        } else {
            attempt.follow()
        }
    })
}

/// Why a redirect was not followed; found again in the error chain by [`describe`].
#[derive(Debug)]
struct RedirectError(String);

impl std::fmt::Display for RedirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectError {}

/// A response as read: status, headers and the body up to [`MAX_BODY_BYTES`].
struct Received {
    status: u16,
    headers: Map<String, Value>,
    bytes: Vec<u8>,
    truncated: bool,
    elapsed: std::time::Duration,
}

/// Sends the request and reads its response, saying on the step's output what came back.
async fn receive(
    client: &Client,
    request: reqwest::Request,
    req: &HttpRequest,
    shown: &str,
    out: &OutputSink,
) -> Result<Received, Outcome> {
    let started = Instant::now();
    let response = client.execute(request).await.map_err(|e| {
        out.line(
            Stream::Stderr,
            &format!(
                "{} {shown} -> failed after {} ms",
                req.method,
                started.elapsed().as_millis()
            ),
        );
        let why = describe(&e, req.tls.insecure);
        Outcome::failed(format!("{} {shown}: {why}", req.method))
    })?;
    let status = response.status().as_u16();
    let headers = header_map(response.headers());
    let (bytes, truncated) = read_bounded(response, MAX_BODY_BYTES).await.map_err(|e| {
        out.line(
            Stream::Stderr,
            &format!("{} {shown} -> {status}, body not read", req.method),
        );
        Outcome::failed(format!(
            "{} {shown}: {status}, reading the body: {}",
            req.method,
            describe(&e, req.tls.insecure)
        ))
    })?;
    let elapsed = started.elapsed();
    let cut = if truncated {
        ", truncated at 10 MiB"
    } else {
        ""
    };
    out.line(
        Stream::Stdout,
        &format!(
            "{} {shown} -> {status} in {} ms ({} bytes{cut})",
            req.method,
            elapsed.as_millis(),
            bytes.len()
        ),
    );
    Ok(Received {
        status,
        headers,
        bytes,
        truncated,
        elapsed,
    })
}

impl Received {
    /// The step's expectations applied; the result document (`status`, `headers`, `body`,
    /// `json`, `truncated`, `elapsed_ms`) either way.
    fn judge(self, req: &HttpRequest) -> Outcome {
        let body = lossy_text(&self.bytes, self.truncated);
        let parsed = serde_json::from_slice::<Value>(&self.bytes).unwrap_or(Value::Null);
        let expect = Expect {
            status: req.expect_status.as_ref(),
            body_contains: req.expect_body_contains.as_deref(),
        };
        let verdict = expect.check(&Seen {
            status: self.status,
            body: &body,
            truncated: self.truncated,
        });
        let result = json!({
            "status": self.status,
            "headers": self.headers,
            "body": body,
            "json": parsed,
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed.as_millis() as u64,
        });
        match verdict {
            Ok(()) => Outcome::Succeeded { result },
            Err(message) => Outcome::Failed {
                message,
                result: Some(result),
            },
        }
    }
}

fn build_request(client: &Client, req: &HttpRequest, url: Url) -> Result<reqwest::Request, String> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid HTTP method `{}`", req.method))?;
    let mut builder = client
        .request(method, url)
        .headers(header_values(&req.headers)?);
    let has_content_type = req
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    builder = match &req.body {
        None => builder,
        Some(HttpBody::Json(v)) => builder.json(v),
        Some(HttpBody::Text(t)) => {
            if !has_content_type {
                builder = builder.header(CONTENT_TYPE, "text/plain; charset=utf-8");
            }
            builder.body(t.clone())
        }
        Some(HttpBody::Form(fields)) => {
            if !has_content_type {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            }
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            builder.body(encoded)
        }
    };
    builder.build().map_err(|e| {
        format!(
            "cannot build the request: {}",
            describe(&e, req.tls.insecure)
        )
    })
}

/// The request headers. Values are marked sensitive (kept out of HTTP/2 header tables and
/// debug output); a bad value is reported by the header's name only, since it may be a token.
fn header_values(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            format!(
                "header `{name}`: the value has characters a header cannot hold (a line break?)"
            )
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// Response headers for the result document: names in lower case (as `http` keeps them), a
/// header sent several times joined with `", "`.
fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    let mut map = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_string(), Value::String(joined));
    }
    map
}

/// Reads the body as it streams in, keeping at most `limit` bytes. Past the limit, the rest is
/// not read (the connection is dropped rather than drained).
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    // The announced length only sizes the first allocation, and not beyond 64 KiB: a HEAD
    // response or a lying server announces bytes that never come.
    let hint = response.content_length().unwrap_or(0).min(64 * 1024) as usize;
    let mut body = Vec::with_capacity(hint.min(limit));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The body as text (invalid UTF-8 replaced). A body cut at the limit may end inside a
/// character; that partial character is dropped rather than shown as garbage.
fn lossy_text(bytes: &[u8], truncated: bool) -> String {
    let mut end = bytes.len();
    if truncated
        && let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
    {
        end = e.valid_up_to();
    }
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A URL as the output and messages show it: a password in it becomes `***`.
fn shown_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A request error in words: the redirect problem if that is what it was, else the chain of
/// causes without reqwest's own "error sending request for url (...)" (the message names the
/// request already), with a hint when a certificate was refused.
fn describe(err: &reqwest::Error, insecure: bool) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<RedirectError>() {
            return r.0.clone();
        }
        let text = e.to_string();
        // hyper's "client error (Connect)" says nothing the next cause does not.
        if !text.starts_with("client error (") && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = e.source();
    }
    let what = if err.is_timeout() && err.is_connect() {
        format!("no connection within {}s", CONNECT_TIMEOUT.as_secs())
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else if err.is_body() || err.is_decode() {
        "the response broke off".to_string()
    } else if causes.is_empty() {
        err.to_string()
    } else {
        "request failed".to_string()
    };
    let text = if causes.is_empty() {
        what
    } else {
        format!("{what}: {}", causes.join(": "))
    };
    with_tls_hint(text, insecure)
}

/// Adds what to do to a TLS failure that has a usual fix.
fn with_tls_hint(mut text: String, insecure: bool) -> String {
    if text.contains("CertificateRequired") {
        text.push_str(
            " (the server asks for a client certificate: set `tls.client_cert` and `tls.client_key`)",
        );
    } else if !insecure && text.contains("UnknownIssuer") {
        text.push_str(
            " (the server's certificate is not trusted: set `tls.ca_file` to the CA that signed it)",
        );
    }
    text
}

/// Resolves, connects, and for `https` completes a TLS handshake, sending nothing.
async fn probe(
    url: &Url,
    tls: &Arc<rustls::ClientConfig>,
    addresses: &Addresses,
) -> Result<(), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url
        .port_or_known_default()
        .ok_or("the URL has no port and no known default")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = addresses
        .lookup(host, port)
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    let mut last = String::new();
    for addr in addrs {
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                last = format!("cannot connect to {addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!(
                    "no connection to {addr} within {}s",
                    CONNECT_TIMEOUT.as_secs()
                );
                continue;
            }
        };
        if url.scheme() != "https" {
            return Ok(());
        }
        let name = rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        return match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(with_tls_hint(
                format!("TLS handshake with {addr}: {e}"),
                false,
            )),
            Err(_) => Err(format!(
                "no TLS handshake with {addr} within {}s",
                CONNECT_TIMEOUT.as_secs()
            )),
        };
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_not_shown() {
        assert_eq!(
            shown_url("https://ops:hunter22@api.example/x?y=1"),
            "https://ops:***@api.example/x?y=1"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("Set-Cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.insert("Content-Type", HeaderValue::from_static("text/plain"));
        let m = header_map(&h);
        assert_eq!(m["set-cookie"], "a=1, b=2");
        assert_eq!(m["content-type"], "text/plain");
    }

    #[test]
    fn a_cut_character_is_dropped_not_garbled() {
        let bytes = "né".as_bytes();
        assert_eq!(lossy_text(&bytes[..2], true), "n");
        assert_eq!(lossy_text(&bytes[..2], false), "n\u{fffd}");
    }
}
