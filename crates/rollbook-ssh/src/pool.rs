//! The run's open connections: one per target, shared by every step on it, and never more than
//! `cap` open (or being opened) at once.
//!
//! Why a cap: each connection is a file descriptor and a russh session in memory. A run over
//! 10,000 hosts that kept every host's connection until the end would need 10,000 descriptors
//! (more than a default `ulimit -n` of 1024) and the memory of 10,000 sessions, while only the
//! steps in flight use one. At the cap, the connection unused for longest is closed to make
//! room; when every open connection is in use, a new host waits until one is free.
//!
//! The pool knows nothing of SSH: it holds any `C`, so that its rules are tested on their own.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Connections by target, at most `cap` of them.
pub(crate) struct Pool<K, C> {
    cap: usize,
    state: Mutex<State<K, C>>,
    /// Told whenever a connection becomes idle, is opened, or a slot is given back.
    changed: Notify,
}

struct State<K, C> {
    entries: HashMap<K, Entry<C>>,
    /// Counts uses, so that "least recently used" needs no clock.
    tick: u64,
}

enum Entry<C> {
    /// One checkout is connecting; the others for the same target wait for it.
    Opening,
    Open {
        conn: Arc<C>,
        /// Leases out now: a connection in use is never closed to make room.
        users: usize,
        last_used: u64,
    },
}

/// What a checkout does next, decided under the lock.
enum Next<C> {
    /// Use this open connection.
    Use(Arc<C>),
    /// Connect: a slot is reserved. `closed` is the idle or broken connection that gave up
    /// its slot (dropped outside the lock).
    Open { closed: Option<Arc<C>> },
    /// Nothing to do until a connection is opened or becomes idle.
    Wait,
}

impl<K: Eq + Hash + Clone, C> Pool<K, C> {
    /// A pool of at most `cap` connections (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Pool {
            cap: cap.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                tick: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Connections open or being opened now.
    #[cfg(test)]
    pub(crate) fn open_now(&self) -> usize {
        self.lock().entries.len()
    }

    /// The target's connection: the open one if `alive` says it still works, else one that
    /// `open` makes (waiting for a free slot first when the pool is full).
    pub(crate) async fn checkout<E, Fut>(
        &self,
        key: &K,
        alive: impl Fn(&C) -> bool,
        open: impl FnOnce() -> Fut,
    ) -> Result<Lease<'_, K, C>, E>
    where
        Fut: Future<Output = Result<C, E>>,
    {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read: a change after the read still wakes us.
            changed.as_mut().enable();
            let next = self.lock().next(key, self.cap, &alive);
            match next {
                Next::Use(conn) => return Ok(self.lease(key, conn)),
                Next::Open { closed } => {
                    drop(closed);
                    break;
                }
                Next::Wait => changed.await,
            }
        }
        let reserved = Reserved { pool: self, key };
        let conn = Arc::new(open().await?);
        // Connected: the slot is the connection's now, not to be given back (`Reserved`
        // holds only references: forgetting it leaks nothing).
        std::mem::forget(reserved);
        {
            let mut state = self.lock();
            state.tick += 1;
            let last_used = state.tick;
            state.entries.insert(
                key.clone(),
                Entry::Open {
                    conn: conn.clone(),
                    users: 1,
                    last_used,
                },
            );
        }
        self.changed.notify_waiters();
        Ok(self.lease(key, conn))
    }

    fn lease(&self, key: &K, conn: Arc<C>) -> Lease<'_, K, C> {
        Lease {
            pool: self,
            key: key.clone(),
            conn,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, C>> {
        // A panic while the lock was held leaves the map consistent: every change is one
        // insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A lease ended: the connection is idle once its last user is done.
    fn give_back(&self, key: &K, conn: &Arc<C>) {
        let idle = {
            let mut state = self.lock();
            state.tick += 1;
            let now = state.tick;
            match state.entries.get_mut(key) {
                Some(Entry::Open {
                    conn: open,
                    users,
                    last_used,
                }) if Arc::ptr_eq(open, conn) => {
                    *users -= 1;
                    *last_used = now;
                    *users == 0
                }
                // Replaced after it broke: nothing of it is counted any more.
                _ => false,
            }
        };
        if idle {
            self.changed.notify_waiters();
        }
    }

    /// A connect that failed or was abandoned gives its slot back.
    fn unreserve(&self, key: &K) {
        {
            let mut state = self.lock();
            if matches!(state.entries.get(key), Some(Entry::Opening)) {
                state.entries.remove(key);
            }
        }
        self.changed.notify_waiters();
    }
}

impl<K: Eq + Hash + Clone, C> State<K, C> {
    fn next(&mut self, key: &K, cap: usize, alive: &impl Fn(&C) -> bool) -> Next<C> {
        self.tick += 1;
        let now = self.tick;
        let mut closed = None;
        match self.entries.get_mut(key) {
            Some(Entry::Opening) => return Next::Wait,
            Some(Entry::Open {
                conn,
                users,
                last_used,
            }) => {
                if alive(conn) {
                    *users += 1;
                    *last_used = now;
                    return Next::Use(conn.clone());
                }
                // Broken: its slot is this connect's.
                if let Some(Entry::Open { conn, .. }) = self.entries.remove(key) {
                    closed = Some(conn);
                }
            }
            None => {}
        }
        if closed.is_none() && self.entries.len() >= cap {
            match self.least_recently_used_idle() {
                Some(lru) => {
                    if let Some(Entry::Open { conn, .. }) = self.entries.remove(&lru) {
                        closed = Some(conn);
                    }
                }
                None => return Next::Wait,
            }
        }
        self.entries.insert(key.clone(), Entry::Opening);
        Next::Open { closed }
    }

    fn least_recently_used_idle(&self) -> Option<K> {
        self.entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                Entry::Open {
                    users: 0,
                    last_used,
                    ..
                } => Some((*last_used, key)),
                _ => None,
            })
            .min_by_key(|(last_used, _)| *last_used)
            .map(|(_, key)| key.clone())
    }
}

/// A slot reserved for a connect; given back if the connect fails or is abandoned.
struct Reserved<'a, K: Eq + Hash + Clone, C> {
    pool: &'a Pool<K, C>,
    key: &'a K,
}

impl<K: Eq + Hash + Clone, C> Drop for Reserved<'_, K, C> {
    fn drop(&mut self) {
        self.pool.unreserve(self.key);
    }
}

/// One use of a connection; while any lease is out, the pool does not close it.
pub(crate) struct Lease<'a, K: Eq + Hash + Clone, C> {
    pool: &'a Pool<K, C>,
    key: K,
    conn: Arc<C>,
}

impl<K: Eq + Hash + Clone, C> Deref for Lease<'_, K, C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<K: Eq + Hash + Clone, C> Drop for Lease<'_, K, C> {
    fn drop(&mut self) {
        self.pool.give_back(&self.key, &self.conn);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A stand-in connection: which target it is for, and whether it still works.
    struct Conn {
        target: &'static str,
        alive: AtomicBool,
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            CLOSED.with(|c| c.lock().unwrap().push(self.target));
        }
    }

    thread_local! {
        static CLOSED: Mutex<Vec<&'static str>> = const { Mutex::new(Vec::new()) };
    }

    fn closed() -> Vec<&'static str> {
        CLOSED.with(|c| std::mem::take(&mut *c.lock().unwrap()))
    }

    async fn get<'a>(
        pool: &'a Pool<&'static str, Conn>,
        target: &'static str,
        opened: &AtomicUsize,
    ) -> Lease<'a, &'static str, Conn> {
        pool.checkout(
            &target,
            |c| c.alive.load(Ordering::Relaxed),
            || async {
                // A connect takes a while: others for the same target come meanwhile.
                tokio::task::yield_now().await;
                opened.fetch_add(1, Ordering::Relaxed);
                Ok::<_, ()>(Conn {
                    target,
                    alive: AtomicBool::new(true),
                })
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_target_reuses_its_open_connection() {
        let pool = Pool::new(4);
        let opened = AtomicUsize::new(0);
        drop(get(&pool, "a", &opened).await);
        let both = (
            get(&pool, "a", &opened).await,
            get(&pool, "a", &opened).await,
        );
        assert_eq!(opened.load(Ordering::Relaxed), 1);
        assert_eq!(pool.open_now(), 1);
        drop(both);
        assert!(closed().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn at_the_cap_the_least_recently_used_idle_connection_is_closed() {
        let pool = Pool::new(3);
        let opened = AtomicUsize::new(0);
        for target in ["a", "b", "c"] {
            drop(get(&pool, target, &opened).await);
        }
        // `a` is used again: `b` is now the one unused for longest.
        drop(get(&pool, "a", &opened).await);
        let d = get(&pool, "d", &opened).await;
        assert_eq!(closed(), vec!["b"]);
        assert_eq!(pool.open_now(), 3);
        drop(d);
        drop(get(&pool, "e", &opened).await);
        assert_eq!(closed(), vec!["c"]);
        assert_eq!(opened.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_in_use_is_never_closed_and_a_new_target_waits_for_one_to_be_free() {
        let pool = Pool::new(2);
        let opened = AtomicUsize::new(0);
        let a = get(&pool, "a", &opened).await;
        let b = get(&pool, "b", &opened).await;
        let c = get(&pool, "c", &opened);
        tokio::pin!(c);
        // Both connections are busy: `c` cannot be opened.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), c.as_mut())
                .await
                .is_err()
        );
        assert!(closed().is_empty());
        drop(b);
        let c = c.await;
        assert_eq!(closed(), vec!["b"]);
        assert_eq!(pool.open_now(), 2);
        drop((a, c));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_broken_connection_is_replaced() {
        let pool = Pool::new(2);
        let opened = AtomicUsize::new(0);
        let a = get(&pool, "a", &opened).await;
        a.alive.store(false, Ordering::Relaxed);
        let again = get(&pool, "a", &opened).await;
        assert_eq!(opened.load(Ordering::Relaxed), 2);
        assert_eq!(pool.open_now(), 1);
        // The broken one's last lease ends: it is not counted twice, nor the new one freed.
        drop(a);
        assert_eq!(closed(), vec!["a"]);
        assert_eq!(pool.open_now(), 1);
        drop(again);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_connect_gives_its_slot_back() {
        let pool: Pool<&'static str, Conn> = Pool::new(1);
        let failed = pool
            .checkout(&"a", |_| true, || async { Err::<Conn, _>("refused") })
            .await;
        assert!(matches!(failed, Err("refused")));
        assert_eq!(pool.open_now(), 0);
        let opened = AtomicUsize::new(0);
        drop(get(&pool, "b", &opened).await);
        assert_eq!(pool.open_now(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_same_target_opened_at_once_shares_one_connect() {
        let pool = Pool::new(4);
        let opened = AtomicUsize::new(0);
        let (x, y, z) = tokio::join!(
            get(&pool, "a", &opened),
            get(&pool, "a", &opened),
            get(&pool, "a", &opened)
        );
        assert_eq!(opened.load(Ordering::Relaxed), 1);
        drop((x, y, z));
    }
}
