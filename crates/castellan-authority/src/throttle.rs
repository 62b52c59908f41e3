//! Sign-in throttling, per account and per source address.
//!
//! Accounts: each consecutive failure makes the next attempt wait longer
//! (1 s, 2 s, 4 s, ...); after `max_failures` the account is locked for
//! `lockout`, and even the right password is refused. Names are counted
//! whether or not such an account exists, so the throttle reveals nothing.
//! Sources: a token bucket per address (governor), far more generous, so one
//! office behind one address still signs in while one account is locked.
//! State lives in memory on each node; a restart forgives.

use crate::config::SigninConfig;
use castellan_core::UnixTime;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;

/// Accounts remembered at most; beyond this the oldest quiet ones are forgotten.
const MAX_TRACKED_ACCOUNTS: usize = 100_000;
/// Longest delay between attempts before the lockout takes over, seconds.
const MAX_DELAY: i64 = 60;

/// Whether an attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Allowed,
    /// Too many attempts from this address.
    SourceLimited { retry_after: i64 },
    /// The account failed recently; wait before the next try.
    AccountDelayed { retry_after: i64 },
    /// Too many consecutive failures; the account is cooling off.
    AccountLocked { retry_after: i64 },
}

#[derive(Debug, Clone, Copy)]
struct Account {
    failures: u32,
    last_failure: UnixTime,
    locked_until: UnixTime,
}

/// The throttle shared by every sign-in path.
pub struct Throttle {
    max_failures: u32,
    lockout: i64,
    accounts: Mutex<HashMap<String, Account>>,
    sources: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("max_failures", &self.max_failures)
            .finish_non_exhaustive()
    }
}

/// Names longer than any valid username are cut, so junk input cannot bloat the table.
fn key(account: &str) -> String {
    account.trim().chars().take(128).collect::<String>().to_lowercase()
}

fn delay_after(failures: u32) -> i64 {
    match failures {
        0 => 0,
        n => 1i64
            .checked_shl(n.saturating_sub(1))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY),
    }
}

impl Throttle {
    /// A throttle with the configured limits.
    pub fn new(config: &SigninConfig) -> Self {
        let per_minute = NonZeroU32::new(config.per_source_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            max_failures: config.max_failures.max(1),
            lockout: config.lockout.secs(),
            accounts: Mutex::new(HashMap::new()),
            sources: RateLimiter::hashmap(Quota::per_minute(per_minute)),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides whether an attempt for `account` from `source` may check a password.
    pub fn check(&self, source: IpAddr, account: &str, now: UnixTime) -> Verdict {
        if let Err(not_until) = self.sources.check_key(&source) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after = i64::try_from(wait.as_secs()).unwrap_or(MAX_DELAY).max(1);
            metrics::counter!("castellan_signin_throttled_total", "by" => "source").increment(1);
            return Verdict::SourceLimited { retry_after };
        }
        let accounts = self.accounts();
        let Some(a) = accounts.get(&key(account)) else {
            return Verdict::Allowed;
        };
        if a.locked_until > now {
            metrics::counter!("castellan_signin_throttled_total", "by" => "lockout").increment(1);
            return Verdict::AccountLocked {
                retry_after: a.locked_until.saturating_sub(now),
            };
        }
        if a.failures >= self.max_failures {
            // The lockout has passed: one fresh try is allowed.
            return Verdict::Allowed;
        }
        let ready_at = a.last_failure.saturating_add(delay_after(a.failures));
        if ready_at > now {
            metrics::counter!("castellan_signin_throttled_total", "by" => "delay").increment(1);
            return Verdict::AccountDelayed {
                retry_after: ready_at.saturating_sub(now),
            };
        }
        Verdict::Allowed
    }

    /// Records a failed attempt (wrong password, unknown name, suspended account).
    pub fn failure(&self, account: &str, now: UnixTime) {
        let mut accounts = self.accounts();
        if accounts.len() >= MAX_TRACKED_ACCOUNTS {
            let horizon = now.saturating_sub(self.lockout.max(MAX_DELAY));
            accounts.retain(|_, a| a.last_failure > horizon || a.locked_until > now);
        }
        let a = accounts.entry(key(account)).or_insert(Account {
            failures: 0,
            last_failure: now,
            locked_until: 0,
        });
        if a.failures >= self.max_failures && a.locked_until <= now {
            // Failing again right after a lockout starts a new lockout.
            a.failures = self.max_failures.saturating_sub(1);
        }
        a.failures = a.failures.saturating_add(1);
        a.last_failure = now;
        if a.failures >= self.max_failures {
            a.locked_until = now.saturating_add(self.lockout);
            tracing::warn!(
                lockout_secs = self.lockout,
                "account locked after repeated sign-in failures"
            );
            metrics::counter!("castellan_signin_lockouts_total").increment(1);
        }
    }

    /// Records a success: the account's count starts again.
    pub fn success(&self, account: &str) {
        self.accounts().remove(&key(account));
    }

    /// Drops state nobody needs any more.
    pub fn prune(&self, now: UnixTime) {
        let horizon = now.saturating_sub(self.lockout.max(MAX_DELAY));
        self.accounts()
            .retain(|_, a| a.last_failure > horizon || a.locked_until > now);
        self.sources.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_core::HumanDuration;

    fn throttle() -> Throttle {
        Throttle::new(&SigninConfig {
            lockout: HumanDuration::from_secs(900),
            per_source_per_minute: 20,
            ..SigninConfig::default()
        })
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn delays_grow_then_lock_then_forgive() {
        let t = throttle();
        let mut now = 1_000;
        assert_eq!(t.check(IP, "Alice", now), Verdict::Allowed);
        t.failure("alice", now);
        assert_eq!(t.check(IP, "ALICE", now), Verdict::AccountDelayed { retry_after: 1 });
        now += 1;
        assert_eq!(t.check(IP, "alice", now), Verdict::Allowed);
        t.failure("alice", now);
        assert_eq!(
            t.check(IP, "alice", now + 1),
            Verdict::AccountDelayed { retry_after: 1 }
        );
        for _ in 0..3 {
            now += 60;
            t.failure("alice", now);
        }
        assert_eq!(
            t.check(IP, "alice", now + 60),
            Verdict::AccountLocked { retry_after: 840 }
        );
        assert_eq!(
            t.check(IP, "bob", now),
            Verdict::Allowed,
            "one lockout never blocks another account"
        );
        now += 901;
        assert_eq!(t.check(IP, "alice", now), Verdict::Allowed);
        t.failure("alice", now);
        assert!(matches!(t.check(IP, "alice", now), Verdict::AccountLocked { .. }));
        t.success("bob");
        now += 901;
        t.success("alice");
        assert_eq!(t.check(IP, "alice", now), Verdict::Allowed);
    }

    #[test]
    fn sources_have_their_own_bucket() {
        let t = throttle();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        for i in 0..20 {
            assert_eq!(t.check(IP, &format!("user{i}"), 0), Verdict::Allowed);
        }
        assert!(matches!(t.check(IP, "user99", 0), Verdict::SourceLimited { .. }));
        assert_eq!(t.check(other, "user99", 0), Verdict::Allowed);
    }
}
