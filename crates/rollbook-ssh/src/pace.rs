//! Pacing of new connections: a bound on the SSH handshakes in progress, in all and per
//! server.
//!
//! Why: sshd drops new connections while too many are still unauthenticated (`MaxStartups`,
//! `10:30:100` by default: from 10 on, 30 % of new ones are dropped, from 100 on all). A
//! fan-out that opens hundreds of connections at once to one sshd (hosts behind one address,
//! several users on one host) would lose most of them, and hundreds of handshakes at once
//! anywhere only queue on the CPU. A handshake holds a permit from connect to authenticated;
//! per server (address and port) fewer than `MaxStartups`' first number are in progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Handshakes in progress, bounded in all and per server.
pub(crate) struct Pacer {
    all: Semaphore,
    per_server: usize,
    /// A server's semaphore, while some handshake with it is in progress or waiting.
    servers: Mutex<HashMap<(String, u16), Arc<Semaphore>>>,
}

/// The right to run one handshake; the next one may start when it is dropped.
pub(crate) struct Permit<'a> {
    pacer: &'a Pacer,
    server: (String, u16),
    _one: OwnedSemaphorePermit,
    _all: SemaphorePermit<'a>,
}

impl Pacer {
    /// At most `all` handshakes at once, and `per_server` with one address and port.
    pub(crate) fn new(all: usize, per_server: usize) -> Self {
        Pacer {
            all: Semaphore::new(all.max(1)),
            per_server: per_server.max(1),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the server's turn, then for a turn in all (in this order, so that a busy
    /// server does not hold a turn others could use).
    pub(crate) async fn permit(&self, address: &str, port: u16) -> Permit<'_> {
        let server = (address.to_string(), port);
        let gate = self
            .lock()
            .entry(server.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
            .clone();
        let one = gate.acquire_owned().await.expect("never closed");
        let all = self.all.acquire().await.expect("never closed");
        Permit {
            pacer: self,
            server,
            _one: one,
            _all: all,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u16), Arc<Semaphore>>> {
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Servers with a handshake in progress or waiting (the map forgets the others).
    #[cfg(test)]
    fn servers_tracked(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // Forget a server nobody else holds or waits for; the count is read under the lock
        // that new permits clone the semaphore under, so none is lost.
        let mut servers = self.pacer.lock();
        if let Some(gate) = servers.get(&self.server)
            && Arc::strong_count(gate) == 2
        {
            servers.remove(&self.server);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn blocked(f: impl std::future::Future) -> bool {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .is_err()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_server_gets_at_most_its_share() {
        let pacer = Pacer::new(10, 2);
        let a = pacer.permit("10.0.0.1", 22).await;
        let b = pacer.permit("10.0.0.1", 22).await;
        assert!(blocked(pacer.permit("10.0.0.1", 22)).await);
        // Another port is another server.
        let other = pacer.permit("10.0.0.1", 2222).await;
        drop(a);
        let c = pacer.permit("10.0.0.1", 22).await;
        drop((b, c, other));
        assert_eq!(pacer.servers_tracked(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn all_servers_together_get_at_most_the_total() {
        let pacer = Pacer::new(2, 8);
        let a = pacer.permit("10.0.0.1", 22).await;
        let b = pacer.permit("10.0.0.2", 22).await;
        assert!(blocked(pacer.permit("10.0.0.3", 22)).await);
        drop(b);
        let c = pacer.permit("10.0.0.3", 22).await;
        drop((a, c));
        assert_eq!(pacer.servers_tracked(), 0);
    }
}
