//! Where a journaled target is, to group nodes by the machine or service they acted on.

use url::Url;

use super::facts::LOCAL;

/// Where a target is, for grouping: the host of `deploy@web-1:22 (10.0.0.1)`, the URL host of
/// `GET http://web-1:8080/health`, the database of a SQL URL (its password already hidden),
/// `connection NAME` as it is, and `local` for local work or no target.
pub fn target_group(target: Option<&str>) -> String {
    let Some(target) = target.map(str::trim).filter(|t| !t.is_empty()) else {
        return LOCAL.into();
    };
    if target.starts_with(LOCAL) {
        return LOCAL.into();
    }
    if target.starts_with("connection ") {
        return target.into();
    }
    if let Some((method, url)) = target.split_once(' ')
        && !method.is_empty()
        && method.chars().all(|c| c.is_ascii_uppercase())
        && let Ok(url) = Url::parse(url)
    {
        return url.host_str().unwrap_or(LOCAL).to_string();
    }
    if target.contains("://")
        && let Ok(url) = Url::parse(target)
    {
        // A database URL: its host, port and database name, or a SQLite file.
        let host = url.host_str().unwrap_or_default();
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        return format!("{host}{port}{}", url.path())
            .trim_end_matches('/')
            .to_string();
    }
    // An SSH target: `user@host:port (address)`.
    let target = target.split(" (").next().unwrap_or(target);
    let target = target.rsplit_once('@').map_or(target, |(_, h)| h);
    host_of(target).into()
}

/// `host:port` without the port (`[::1]:80` keeps its brackets).
fn host_of(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.find(']').map_or(host_port, |i| &host_port[..=i]);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_group_by_host_url_host_or_database() {
        let g = |t: &str| target_group(Some(t));
        assert_eq!(g("deploy@web-1:22"), "web-1");
        assert_eq!(g("deploy@web-1:22 (10.0.0.1)"), "web-1");
        assert_eq!(g("web-1"), "web-1");
        assert_eq!(g("GET http://web-1:8080/health"), "web-1");
        assert_eq!(
            g("POST https://user:***@api.internal/v1/drain?x=1"),
            "api.internal"
        );
        assert_eq!(g("GET http://[::1]:8080/"), "[::1]");
        assert_eq!(
            g("postgres://app:***@db.internal:5432/app"),
            "db.internal:5432/app"
        );
        assert_eq!(g("sqlite:///tmp/x.db"), "/tmp/x.db");
        assert_eq!(
            g("mysql://root@127.0.0.1/test?password=***"),
            "127.0.0.1/test"
        );
        assert_eq!(
            g("GET https://ops:p%40ss@API.internal:8443/x"),
            "api.internal"
        );
        assert_eq!(g("connection db"), "connection db");
        assert_eq!(g("local, in /tmp"), "local");
        assert_eq!(target_group(None), "local");
    }
}
