//! Throttling of password sign-ins and registrations. Pure: every call takes the
//! current time, the HTTP handlers hold the state behind a lock for microseconds.
//!
//! Sign-in: each failed password counts against the account and against the address it
//! came from. Past a number of free failures, every further failure locks that account
//! (or address) for a delay that doubles, up to a maximum; while locked, sign-ins are
//! refused before any password is checked, the right one included. A success clears
//! the account's count (not the address's: an attacker could otherwise clear its own
//! address by signing in to its own account between guesses). Counts are forgotten
//! after a quiet `max_delay`.
//!
//! Registration: a token bucket per address and one for the whole server.
//!
//! The state is bounded: at most `max_tracked` accounts and as many addresses; when
//! full, forgotten entries are dropped first, then the oldest.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::gate::AddressKey;

/// Throttling settings (see docs/security.md for why these defaults).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failed sign-ins per account before the first lockout.
    pub account_free_failures: u32,
    /// Failed sign-ins per address before the first lockout (higher: many people may
    /// share one address behind NAT).
    pub address_free_failures: u32,
    /// First lockout; each further failure doubles it.
    pub base_delay: Duration,
    /// Longest lockout; counts are forgotten after this long without a failure.
    pub max_delay: Duration,
    /// Registrations one address may make at once.
    pub register_burst: u32,
    /// Registrations one address may make per hour, sustained.
    pub register_per_hour: u32,
    /// Registrations the whole server takes at once.
    pub register_global_burst: u32,
    /// Registrations the whole server takes per hour, sustained.
    pub register_global_per_hour: u32,
    /// Accounts (and, separately, addresses) tracked at once.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            address_free_failures: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            register_burst: 10,
            register_per_hour: 30,
            register_global_burst: 100,
            register_global_per_hour: 1000,
            max_tracked: 10_000,
        }
    }
}

/// Why a sign-in or registration is refused before it is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failed sign-ins for this account.
    Account(Duration),
    /// Too many failed sign-ins from this address.
    Address(Duration),
    /// Too many registrations from this address.
    RegisterAddress(Duration),
    /// Too many registrations on this server.
    RegisterServer(Duration),
}

impl Refused {
    /// How long until a retry can succeed.
    pub fn retry_after(self) -> Duration {
        match self {
            Refused::Account(d)
            | Refused::Address(d)
            | Refused::RegisterAddress(d)
            | Refused::RegisterServer(d) => d,
        }
    }

    /// `retry_after` in whole seconds, rounded up (at least 1), as `Retry-After` wants.
    pub fn retry_after_secs(self) -> u64 {
        let d = self.retry_after();
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// A sentence for a person.
    pub fn message(self) -> String {
        let s = self.retry_after_secs();
        match self {
            Refused::Account(_) => {
                format!("too many failed sign-ins for this account; retry after {s} s")
            }
            Refused::Address(_) => {
                format!("too many failed sign-ins from your address; retry after {s} s")
            }
            Refused::RegisterAddress(_) => {
                format!("too many registrations from your address; retry after {s} s")
            }
            Refused::RegisterServer(_) => {
                format!("this server is taking too many registrations; retry after {s} s")
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Failure counts with doubling lockouts, per key.
#[derive(Debug)]
struct Backoff<K> {
    free: u32,
    base: Duration,
    max: Duration,
    cap: usize,
    map: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    fn new(free: u32, base: Duration, max: Duration, cap: usize) -> Self {
        Self {
            free,
            base,
            max,
            cap: cap.max(1),
            map: HashMap::new(),
        }
    }

    /// The time left on `k`'s lockout, if locked.
    fn locked(&self, k: &K, now: Instant) -> Option<Duration> {
        let until = self.map.get(k)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Forgotten: unlocked, and quiet for `max` since the later of the last failure
    /// and the end of its lockout.
    fn forgotten(max: Duration, f: &Failures, now: Instant) -> bool {
        let quiet_since = f.locked_until.map_or(f.last, |u| u.max(f.last));
        quiet_since <= now && now.saturating_duration_since(quiet_since) >= max
    }

    fn failed(&mut self, k: &K, now: Instant) {
        if let Some(f) = self.map.get(k) {
            if Self::forgotten(self.max, f, now) {
                self.map.remove(k);
            }
        }
        if !self.map.contains_key(k) && self.map.len() >= self.cap {
            self.make_room(now);
        }
        let f = self.map.entry(k.clone()).or_insert(Failures {
            count: 0,
            locked_until: None,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count > self.free {
            let doublings = (f.count - self.free - 1).min(30);
            let delay = self.base.saturating_mul(1 << doublings).min(self.max);
            f.locked_until = Some(now + delay);
        }
    }

    fn succeeded(&mut self, k: &K) {
        self.map.remove(k);
    }

    fn make_room(&mut self, now: Instant) {
        let max = self.max;
        self.map.retain(|_, f| !Self::forgotten(max, f, now));
        if self.map.len() >= self.cap {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
    }
}

/// A token bucket that can say when its next token comes.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct Rate {
    burst: f64,
    per_sec: f64,
}

impl Rate {
    fn new(burst: u32, per_hour: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_hour) / 3600.0,
        }
    }

    fn full(&self, now: Instant) -> Bucket {
        Bucket {
            tokens: self.burst,
            last: now,
        }
    }

    fn take(&self, b: &mut Bucket, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else if self.per_sec > 0.0 {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        } else {
            Err(Duration::from_secs(3600))
        }
    }
}

/// Sign-in backoff and registration limits. See the module docs.
#[derive(Debug)]
pub struct Throttle {
    accounts: Backoff<String>,
    addresses: Backoff<AddressKey>,
    reg_rate: Rate,
    reg_by_address: HashMap<AddressKey, Bucket>,
    reg_global_rate: Rate,
    reg_global: Option<Bucket>,
    max_tracked: usize,
}

impl Throttle {
    /// Empty state for `cfg`.
    pub fn new(cfg: &ThrottleConfig) -> Self {
        Self {
            accounts: Backoff::new(
                cfg.account_free_failures,
                cfg.base_delay,
                cfg.max_delay,
                cfg.max_tracked,
            ),
            addresses: Backoff::new(
                cfg.address_free_failures,
                cfg.base_delay,
                cfg.max_delay,
                cfg.max_tracked,
            ),
            reg_rate: Rate::new(cfg.register_burst, cfg.register_per_hour),
            reg_by_address: HashMap::new(),
            reg_global_rate: Rate::new(cfg.register_global_burst, cfg.register_global_per_hour),
            reg_global: None,
            max_tracked: cfg.max_tracked.max(1),
        }
    }

    /// Whether a password sign-in for `user` from `addr` may be checked now.
    pub fn check_sign_in(
        &self,
        user: &str,
        addr: Option<AddressKey>,
        now: Instant,
    ) -> Result<(), Refused> {
        if let Some(d) = addr.and_then(|a| self.addresses.locked(&a, now)) {
            return Err(Refused::Address(d));
        }
        if let Some(d) = self.accounts.locked(&user.to_owned(), now) {
            return Err(Refused::Account(d));
        }
        Ok(())
    }

    /// A password was wrong (or the account does not exist).
    pub fn sign_in_failed(&mut self, user: &str, addr: Option<AddressKey>, now: Instant) {
        self.accounts.failed(&user.to_owned(), now);
        if let Some(a) = addr {
            self.addresses.failed(&a, now);
        }
    }

    /// The password was right: the account's count starts over.
    pub fn sign_in_succeeded(&mut self, user: &str) {
        self.accounts.succeeded(&user.to_owned());
    }

    /// Takes a registration from `addr`'s allowance and the server's.
    pub fn register(&mut self, addr: Option<AddressKey>, now: Instant) -> Result<(), Refused> {
        // Check both before taking from either, so a refusal costs nothing.
        let mut global = self
            .reg_global
            .unwrap_or_else(|| self.reg_global_rate.full(now));
        let mut mine = addr.map(|a| {
            self.reg_by_address
                .get(&a)
                .copied()
                .unwrap_or_else(|| self.reg_rate.full(now))
        });
        if let Some(b) = &mut mine {
            let mut probe = *b;
            self.reg_rate
                .take(&mut probe, now)
                .map_err(Refused::RegisterAddress)?;
        }
        self.reg_global_rate
            .take(&mut global, now)
            .map_err(Refused::RegisterServer)?;
        self.reg_global = Some(global);
        if let (Some(a), Some(mut b)) = (addr, mine) {
            self.reg_rate.take(&mut b, now).expect("probed above");
            if !self.reg_by_address.contains_key(&a)
                && self.reg_by_address.len() >= self.max_tracked
            {
                // Full buckets carry no state worth keeping; then drop the oldest.
                let rate = &self.reg_rate;
                self.reg_by_address.retain(|_, b| {
                    let mut b = *b;
                    let _ = rate.take(&mut b, now);
                    b.tokens + 1.0 < rate.burst
                });
                if self.reg_by_address.len() >= self.max_tracked {
                    if let Some(oldest) = self
                        .reg_by_address
                        .iter()
                        .min_by_key(|(_, b)| b.last)
                        .map(|(k, _)| *k)
                    {
                        self.reg_by_address.remove(&oldest);
                    }
                }
            }
            self.reg_by_address.insert(a, b);
        }
        Ok(())
    }

    /// Accounts and addresses tracked (for tests).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (
            self.accounts.map.len(),
            self.addresses.map.len(),
            self.reg_by_address.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn addr(n: u8) -> Option<AddressKey> {
        Some(AddressKey::V4([10, 0, 0, n]))
    }

    #[test]
    fn wrong_passwords_lock_the_account_and_the_right_one_is_refused_while_locked() {
        let t0 = Instant::now();
        let mut t = Throttle::new(&ThrottleConfig::default());
        let mut refused = 0;
        for _ in 0..150 {
            match t.check_sign_in("alice", addr(1), t0) {
                Ok(()) => t.sign_in_failed("alice", addr(1), t0),
                Err(_) => refused += 1,
            }
        }
        assert_eq!(refused, 144, "5 free failures, the 6th locks");
        // The right password, at once: refused with time to wait.
        let r = t.check_sign_in("alice", addr(1), t0).unwrap_err();
        assert_eq!(r, Refused::Account(S));
        assert!(r.message().contains("retry after 1 s"), "{}", r.message());
        // After the lockout it may be tried; a success starts the count over.
        assert!(t.check_sign_in("alice", addr(1), t0 + S).is_ok());
        t.sign_in_succeeded("alice");
        assert!(t.check_sign_in("alice", addr(1), t0 + S).is_ok());
    }

    #[test]
    fn lockouts_double_up_to_the_maximum_and_are_forgotten_after_it() {
        let cfg = ThrottleConfig {
            account_free_failures: 0,
            max_delay: 8 * S,
            ..ThrottleConfig::default()
        };
        let mut t = Throttle::new(&cfg);
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..6 {
            t.sign_in_failed("bob", None, now);
            let d = t.check_sign_in("bob", None, now).unwrap_err().retry_after();
            waits.push(d.as_secs());
            now += d;
        }
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        // Quiet for the maximum: the next failure is a first one again.
        now += 8 * S;
        t.sign_in_failed("bob", None, now);
        assert_eq!(
            t.check_sign_in("bob", None, now).unwrap_err().retry_after(),
            S
        );
    }

    #[test]
    fn an_address_guessing_many_accounts_is_locked_out() {
        let t0 = Instant::now();
        let mut t = Throttle::new(&ThrottleConfig::default());
        for i in 0..20 {
            t.sign_in_failed(&format!("user{i}"), addr(7), t0);
        }
        assert!(t.check_sign_in("user99", addr(7), t0).is_ok());
        t.sign_in_failed("user20", addr(7), t0);
        assert_eq!(
            t.check_sign_in("user99", addr(7), t0),
            Err(Refused::Address(S))
        );
        assert!(
            t.check_sign_in("user99", addr(8), t0).is_ok(),
            "other addresses are not affected"
        );
    }

    #[test]
    fn registrations_beyond_the_burst_wait_for_the_refill() {
        let t0 = Instant::now();
        let mut t = Throttle::new(&ThrottleConfig::default());
        for _ in 0..10 {
            t.register(addr(1), t0).unwrap();
        }
        let r = t.register(addr(1), t0).unwrap_err();
        assert_eq!(
            r,
            Refused::RegisterAddress(Duration::from_secs(120)),
            "30 per hour"
        );
        assert!(
            t.register(addr(2), t0).is_ok(),
            "another address has its own allowance"
        );
        assert!(t.register(addr(1), t0 + Duration::from_secs(119)).is_err());
        assert!(t.register(addr(1), t0 + Duration::from_secs(120)).is_ok());
    }

    #[test]
    fn the_whole_server_has_a_registration_limit_too() {
        let cfg = ThrottleConfig {
            register_global_burst: 3,
            register_global_per_hour: 3600,
            ..ThrottleConfig::default()
        };
        let t0 = Instant::now();
        let mut t = Throttle::new(&cfg);
        for n in 0..3 {
            t.register(addr(n), t0).unwrap();
        }
        assert_eq!(t.register(addr(9), t0), Err(Refused::RegisterServer(S)));
        assert!(t.register(addr(9), t0 + S).is_ok());
    }

    #[test]
    fn tracked_state_stays_bounded() {
        let cfg = ThrottleConfig {
            max_tracked: 100,
            ..ThrottleConfig::default()
        };
        let t0 = Instant::now();
        let mut t = Throttle::new(&cfg);
        for i in 0..1000u32 {
            let a = Some(AddressKey::V4(i.to_be_bytes()));
            t.sign_in_failed(&format!("u{i}"), a, t0 + Duration::from_millis(i.into()));
            let _ = t.register(a, t0);
        }
        let (accounts, addresses, reg) = t.tracked();
        assert!(
            accounts <= 100 && addresses <= 100 && reg <= 100,
            "{:?}",
            t.tracked()
        );
        // The newest are the ones kept.
        t.sign_in_failed("u999", None, t0 + S);
        assert_eq!(t.accounts.map["u999"].count, 2);
    }
}
