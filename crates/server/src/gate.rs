//! Admission of connections that have not signed in yet: at most so many per remote
//! address, and at most so many in all, so that sockets which never sign in cannot take
//! the whole connection pool or lock other people out. No IO: the accept loop asks
//! [`Gate::admit`] and holds the [`Ticket`] it gets for as long as the connection has
//! not signed in.
//!
//! A ticket covers one TCP connection: its TLS handshake, its HTTP requests (register,
//! sign in, the WebSocket upgrade) and, after an upgrade, the WebSocket until `login` is
//! handed to the hub (a refused login closes the socket at once). It is given back on
//! [`Ticket::release`] or when the last clone is dropped, whichever comes first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Default for [`Gate`]'s per-address cap.
pub const DEFAULT_PER_ADDRESS: usize = 16;

/// The address a connection is counted under: IPv4 addresses as they are, IPv6 by their
/// /64 prefix (one subscriber usually holds a whole /64, so counting single IPv6
/// addresses would be no cap at all), IPv4-mapped IPv6 as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl AddressKey {
    /// The key `ip` is counted under.
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    AddressKey::V6Prefix(o[..8].try_into().expect("16 bytes hold 8"))
                }
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// This address already has `limit` connections that have not signed in.
    #[error(
        "too many connections from your address that have not signed in (at most {limit}); \
         sign in on the ones you have or close them, then retry"
    )]
    PerAddress {
        /// The cap.
        limit: usize,
    },
    /// The server already has `limit` connections that have not signed in.
    #[error(
        "the server has too many connections that have not signed in (at most {limit}); \
         retry in a few seconds"
    )]
    Total {
        /// The cap.
        limit: usize,
    },
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<AddressKey, usize>,
    total: usize,
}

/// Counts connections that have not signed in, by address and in all.
#[derive(Debug)]
pub struct Gate {
    per_address: usize,
    total: usize,
    counts: Mutex<Counts>,
}

impl Gate {
    /// A gate admitting at most `per_address` not-yet-signed-in connections per address
    /// and `total` in all (each at least 1).
    pub fn new(per_address: usize, total: usize) -> Arc<Gate> {
        Arc::new(Gate {
            per_address: per_address.max(1),
            total: total.max(1),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Admits a connection from `ip`, or says why not. The one place counts go up.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let key = AddressKey::of(ip);
        let mut c = self.counts.lock().expect("gate lock is never poisoned");
        if c.total >= self.total {
            return Err(Refusal::Total { limit: self.total });
        }
        let n = c.by_address.entry(key).or_insert(0);
        if *n >= self.per_address {
            return Err(Refusal::PerAddress {
                limit: self.per_address,
            });
        }
        *n += 1;
        c.total += 1;
        Ok(Ticket(Arc::new(Inner {
            gate: self.clone(),
            key,
            held: AtomicBool::new(true),
        })))
    }

    /// Connections from `ip`'s address that have not signed in.
    pub fn count(&self, ip: IpAddr) -> usize {
        let c = self.counts.lock().expect("gate lock is never poisoned");
        c.by_address.get(&AddressKey::of(ip)).copied().unwrap_or(0)
    }

    /// Connections that have not signed in, in all.
    pub fn total(&self) -> usize {
        self.counts
            .lock()
            .expect("gate lock is never poisoned")
            .total
    }

    /// The one place counts go down.
    fn give_back(&self, key: AddressKey) {
        let mut c = self.counts.lock().expect("gate lock is never poisoned");
        c.total -= 1;
        if let Some(n) = c.by_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&key);
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    gate: Arc<Gate>,
    key: AddressKey,
    held: AtomicBool,
}

impl Inner {
    fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.gate.give_back(self.key);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release();
    }
}

/// One admitted connection's place. Clones share the place: the connection task, each
/// of its requests and an upgraded WebSocket each hold one.
#[derive(Debug, Clone)]
pub struct Ticket(Arc<Inner>);

impl Ticket {
    /// Gives the place back now (the connection signed in); later calls do nothing.
    pub fn release(&self) {
        self.0.release();
    }

    /// The address this connection is counted under (sign-in throttling uses it too).
    pub fn address(&self) -> AddressKey {
        self.0.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_own_cap() {
        let g = Gate::new(2, 100);
        let a1 = g.admit(ip("10.0.0.1")).unwrap();
        let _a2 = g.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerAddress { limit: 2 }
        );
        let _b = g.admit(ip("10.0.0.2")).unwrap();
        drop(a1);
        let _a3 = g.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(g.total(), 3);
    }

    #[test]
    fn the_total_cap_holds_across_addresses() {
        let g = Gate::new(10, 2);
        let _a = g.admit(ip("10.0.0.1")).unwrap();
        let _b = g.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.3")).unwrap_err(),
            Refusal::Total { limit: 2 }
        );
    }

    #[test]
    fn release_gives_the_place_back_once_for_all_clones() {
        let g = Gate::new(1, 10);
        let t = g.admit(ip("10.0.0.1")).unwrap();
        let clone = t.clone();
        t.release();
        t.release();
        assert_eq!(g.count(ip("10.0.0.1")), 0);
        let _other = g.admit(ip("10.0.0.1")).unwrap();
        drop(clone);
        drop(t);
        assert_eq!(
            g.count(ip("10.0.0.1")),
            1,
            "a released ticket's drop counts nothing"
        );
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let g = Gate::new(1, 10);
        let _a = g.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(g.admit(ip("2001:db8:1:2::ffff")).is_err());
        let _b = g.admit(ip("2001:db8:1:3::1")).unwrap();
        let _c = g.admit(ip("10.0.0.9")).unwrap();
        assert!(g.admit(ip("::ffff:10.0.0.9")).is_err());
    }
}
