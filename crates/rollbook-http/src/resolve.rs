//! Name resolution that knows the inventory.
//!
//! An inventory entry `{ name: us-east-op-1, address: 10.0.0.5 }` says where that host is, for
//! SSH and HTTP alike: `http://us-east-op-1:8080/health` connects to 10.0.0.5:8080 while the
//! URL, the `Host` header and the TLS name stay `us-east-op-1`. The rendered request carries
//! the address ([`HttpRequest::address`]); the runner teaches it to the one resolver that all
//! its clients share, so redirects and reused connections see the same mapping. Every other
//! name goes to the system's resolver, as reqwest's default does.
//!
//! [`HttpRequest::address`]: rollbook_plan::action::HttpRequest::address

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Names the inventory places somewhere, and the system's resolver for the rest.
#[derive(Default)]
pub struct Addresses {
    /// Lowercase host name → inventory address (an IP, or another name to resolve).
    known: RwLock<HashMap<String, String>>,
}

impl Addresses {
    /// Records that `name` is reached at `address` (the same for the whole run).
    pub fn learn(&self, name: &str, address: &str) {
        let name = name.to_ascii_lowercase();
        // Every request of a host says so again: usually a read finds it already known.
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        if known.get(&name).map(String::as_str) == Some(address) {
            return;
        }
        drop(known);
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        known.insert(name, address.to_string());
    }

    /// Where `name` is: its inventory address when it has one, resolved if that is a name.
    pub async fn lookup(&self, name: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let target = {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            known
                .get(&bare.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| bare.to_string())
        };
        if let Ok(ip) = target.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        Ok(tokio::net::lookup_host((target.as_str(), port))
            .await?
            .collect())
    }
}

/// The [`Resolve`] handed to reqwest: a shared [`Addresses`].
pub struct Resolver(pub Arc<Addresses>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let addresses = self.0.clone();
        Box::pin(async move {
            // Port 0: reqwest puts in the URL's port (or the scheme's).
            let found = addresses.lookup(name.as_str(), 0).await?;
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_inventory_name_resolves_to_its_address_and_others_to_the_system() {
        let a = Addresses::default();
        a.learn("US-East-Op-1", "127.0.2.1");
        let at = a.lookup("us-east-op-1", 8080).await.unwrap();
        assert_eq!(at, ["127.0.2.1:8080".parse().unwrap()]);
        let local = a.lookup("localhost", 80).await.unwrap();
        assert!(local.iter().all(|s| s.ip().is_loopback()), "{local:?}");
        let ip = a.lookup("127.0.0.9", 1).await.unwrap();
        assert_eq!(ip, ["127.0.0.9:1".parse().unwrap()]);
    }
}
