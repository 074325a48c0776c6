//! Sign-in throttling, as the contract words it: 10 failures for one username from one address,
//! or 100 from one address, within 5 minutes, refuse further attempts from there (right or wrong)
//! until the window has passed; a success resets nothing.
//!
//! An attempt is counted *before* its password is checked (a reservation), so that simultaneous
//! guesses can never pass more checks than the limits allow; an attempt that turns out not to be
//! a failure (the right password, or one never checked because the server was busy) is taken
//! back. Which address: the peer's, or with `--trust-forwarded-for` the one the trusted proxies
//! name ([`client_address`]); IPv6 clients count by their /64, the block one host usually holds
//! ([`AddressKey`]). Addresses in an `--exam-network` (a room behind one address) are exempt from
//! the per-address limit, never from the per-username one.
//!
//! A single node counts in memory ([`Throttle`], swept on a timer); behind several nodes the
//! store counts in the database ([`crate::store::Store::count_sign_in`]) by the same rule
//! ([`judge`]), so the limits hold whichever node a request reaches.
//!
//! (`governor` and `tower_governor` meter *requests* with GCRA, refilling steadily; the contract
//! meters *failures* and refuses right and wrong attempts alike, which is this small window.)

use crate::error::{Error, Result};
use crate::store::{Counted, SignInAttempt, Store};
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The window and the limits of throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a failure counts.
    pub window: Duration,
    /// Failures for one username from one address.
    pub per_user: usize,
    /// Failures from one address, any username.
    pub per_address: usize,
}

impl Limits {
    /// The contract's: 10 per username and address, 100 per address, in 5 minutes.
    pub const CONTRACT: Limits = Limits {
        window: Duration::from_secs(300),
        per_user: 10,
        per_address: 100,
    };

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The address an attempt counts against: an IPv4 address, or the /64 of an IPv6 one (an IPv6
/// host usually holds a whole /64, and could otherwise take a fresh address per guess).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of a client address (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The client's address: the peer's, or with `trusted_hops` (`--trust-forwarded-for`) the address
/// that the nearest of that many proxies in front of the server was connected from, read from
/// `X-Forwarded-For` from its end (each proxy appends the address it saw). Entries further left
/// were written by whoever sent the request and prove nothing. A header with fewer entries than
/// hops gives its first one; a missing or unreadable entry gives the peer.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_hops: Option<usize>) -> IpAddr {
    let Some(hops) = trusted_hops.filter(|h| *h > 0) else {
        return peer.to_canonical();
    };
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(entry) = entries
        .len()
        .checked_sub(hops)
        .map_or(entries.first(), |i| entries.get(i))
    else {
        return peer.to_canonical();
    };
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .map_or(peer, |ip| ip)
        .to_canonical()
}

/// Whether `ip` is in one of the exam networks (exempt from per-address limits).
pub fn in_exam_network(ip: IpAddr, networks: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    networks.iter().any(|n| n.contains(&ip))
}

/// `Err(seconds)` while attempts are refused, judged from failures (and attempts being checked)
/// counted elsewhere: their times in ms since the epoch, any order, within the window or not.
pub fn judge(
    limits: Limits,
    for_user: &[i64],
    for_address: &[i64],
    now_ms: i64,
) -> Result<(), u64> {
    let window_ms = limits.window_ms();
    let wait_ms = [
        (for_user, limits.per_user),
        (for_address, limits.per_address),
    ]
    .into_iter()
    .filter_map(|(times, limit)| {
        let mut recent: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| now_ms - t < window_ms)
            .collect();
        recent.sort_unstable();
        (recent.len() >= limit).then(|| window_ms - (now_ms - recent[recent.len() - limit]))
    })
    .max();
    match wait_ms {
        None => Ok(()),
        Some(ms) => Err(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)),
    }
}

/// An address, with one username or for every username.
type Key = (AddressKey, Option<Box<str>>);

/// The in-memory count of one node.
pub struct Throttle {
    limits: Limits,
    counted: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// An attempt counted in memory, until it is settled.
#[derive(Debug)]
pub struct Ticket {
    address: AddressKey,
    username: Box<str>,
    counted_address: bool,
    at: Instant,
}

impl Throttle {
    /// The contract's limits.
    pub fn new() -> Self {
        Self::with_limits(Limits::CONTRACT)
    }

    /// Other limits (tests).
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            limits,
            counted: Mutex::default(),
        }
    }

    /// The window and the limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.counted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt from `address` for `username` (and for the address, unless `exempt`),
    /// or `Err(seconds)` while attempts from there are refused.
    pub fn reserve(
        &self,
        address: AddressKey,
        username: &str,
        exempt: bool,
        now: Instant,
    ) -> Result<Ticket, u64> {
        let mut counted = self.lock();
        let user_key: Key = (address, Some(username.into()));
        let address_key: Key = (address, None);
        let keys = [
            Some((&user_key, self.limits.per_user)),
            (!exempt).then_some((&address_key, self.limits.per_address)),
        ];
        let mut wait = Duration::ZERO;
        for (key, limit) in keys.into_iter().flatten() {
            if let Some(times) = counted.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.limits.window)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    wait = wait.max(self.limits.window - now.duration_since(oldest));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0));
        }
        counted.entry(user_key).or_default().push_back(now);
        if !exempt {
            counted.entry(address_key).or_default().push_back(now);
        }
        Ok(Ticket {
            address,
            username: username.into(),
            counted_address: !exempt,
            at: now,
        })
    }

    /// Takes back an attempt that was no failure.
    pub fn release(&self, ticket: Ticket) {
        let mut counted = self.lock();
        let keys = [
            Some((ticket.address, Some(ticket.username))),
            ticket.counted_address.then_some((ticket.address, None)),
        ];
        for key in keys.into_iter().flatten() {
            if let Some(times) = counted.get_mut(&key) {
                if let Some(i) = times.iter().rposition(|t| *t == ticket.at) {
                    times.remove(i);
                }
                if times.is_empty() {
                    counted.remove(&key);
                }
            }
        }
    }

    /// Forgets every key whose attempts have all left the window (run on a timer, so that a spray
    /// of usernames leaves nothing behind).
    pub fn sweep(&self, now: Instant) {
        let window = self.limits.window;
        self.lock().retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < window)
        });
    }

    /// How many keys are held (metrics, tests).
    pub fn keys(&self) -> usize {
        self.lock().len()
    }

    /// Counts an attempt before its password is checked: in the store when it counts for every
    /// node, else here. 429 `too_many_attempts` while attempts from there are refused.
    pub async fn admit(
        &self,
        store: &dyn Store,
        ip: IpAddr,
        exempt: bool,
        username: &str,
    ) -> Result<Attempt> {
        let address = AddressKey::of(ip);
        let refused = match store
            .count_sign_in(&SignInAttempt {
                address: &address.to_string(),
                username,
                count_address: !exempt,
                limits: self.limits,
            })
            .await?
        {
            Some(Counted::Admitted(id)) => return Ok(Attempt::Stored(id)),
            Some(Counted::Refused(wait)) => wait,
            None => match self.reserve(address, username, exempt, Instant::now()) {
                Ok(ticket) => return Ok(Attempt::Memory(ticket)),
                Err(wait) => wait,
            },
        };
        Err(Error::too_many_attempts(refused))
    }

    /// Settles an attempt: a failure stays counted; anything else (the right password, or no
    /// check at all) is taken back.
    pub async fn settle(&self, store: &dyn Store, attempt: Attempt, failed: bool) -> Result<()> {
        if failed {
            return Ok(());
        }
        match attempt {
            Attempt::Memory(ticket) => {
                self.release(ticket);
                Ok(())
            }
            Attempt::Stored(id) => store.uncount_sign_in(id).await,
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

/// A counted sign-in attempt, until [`Throttle::settle`].
#[derive(Debug)]
pub enum Attempt {
    /// Counted in this node's memory.
    Memory(Ticket),
    /// Counted in the database: the row's id.
    Stored(i64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    fn fail(throttle: &Throttle, ip: IpAddr, user: &str, now: Instant) -> Result<(), u64> {
        throttle
            .reserve(AddressKey::of(ip), user, false, now)
            .map(drop)
    }

    #[test]
    fn ten_failures_for_a_username_refuse_that_address_until_the_window_passes() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(fail(&throttle, IP, "alice", t0).is_ok(), "attempt {i}");
        }
        assert_eq!(fail(&throttle, IP, "alice", t0), Err(300));
        assert!(
            fail(&throttle, IP, "bob", t0).is_ok(),
            "other usernames are not refused"
        );
        assert!(
            fail(&throttle, OTHER, "alice", t0).is_ok(),
            "other addresses are not refused"
        );
        assert!(fail(&throttle, IP, "alice", t0 + Duration::from_secs(300)).is_ok());
    }

    #[test]
    fn attempts_being_checked_count_so_simultaneous_guesses_cannot_pass_the_limit() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        let tickets: Vec<Ticket> = (0..10)
            .map(|_| {
                throttle
                    .reserve(AddressKey::of(IP), "alice", false, t0)
                    .unwrap()
            })
            .collect();
        // None settled yet: an eleventh simultaneous guess is refused.
        assert!(fail(&throttle, IP, "alice", t0).is_err());
        // One of them was the right password: taken back, room for one more.
        let mut tickets = tickets.into_iter();
        throttle.release(tickets.next().unwrap());
        assert!(fail(&throttle, IP, "alice", t0).is_ok());
        assert!(fail(&throttle, IP, "alice", t0).is_err());
    }

    #[test]
    fn a_hundred_failures_from_one_address_refuse_every_username_from_it() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..100 {
            fail(&throttle, IP, &format!("user{i}"), t0).unwrap();
        }
        assert!(fail(&throttle, IP, "someone", t0).is_err());
        assert!(fail(&throttle, OTHER, "someone", t0).is_ok());
    }

    #[test]
    fn an_exam_network_address_is_exempt_from_the_address_limit_but_not_the_username_one() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        let room = AddressKey::of(IP);
        for i in 0..150 {
            throttle
                .reserve(room, &format!("student{i}"), true, t0)
                .unwrap();
        }
        for _ in 0..10 {
            throttle.reserve(room, "alice", true, t0).unwrap();
        }
        assert!(throttle.reserve(room, "alice", true, t0).is_err());
        assert!(throttle.reserve(room, "bob", true, t0).is_ok());
    }

    #[test]
    fn a_sweep_forgets_every_key_whose_attempts_left_the_window() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..50 {
            fail(&throttle, IP, &format!("sprayed{i}"), t0).unwrap();
        }
        fail(&throttle, OTHER, "alice", t0 + Duration::from_secs(200)).unwrap();
        assert_eq!(throttle.keys(), 53);
        throttle.sweep(t0 + Duration::from_secs(300));
        assert_eq!(throttle.keys(), 2, "only the later attempt's keys are left");
        throttle.sweep(t0 + Duration::from_secs(600));
        assert_eq!(throttle.keys(), 0);
    }

    #[test]
    fn failures_counted_by_every_node_refuse_by_the_same_rule() {
        let limits = Limits::CONTRACT;
        let now = 1_000_000_000;
        let ten: Vec<i64> = (0..10).map(|i| now - 1000 + i).collect();
        assert!(judge(limits, &ten[1..], &[], now).is_ok());
        assert_eq!(judge(limits, &ten, &[], now), Err(299));
        assert!(judge(limits, &ten, &[], now + 299_000).is_ok());
        let hundred: Vec<i64> = (0..100).map(|i| now - 100 + i).collect();
        assert!(judge(limits, &[], &hundred[1..], now).is_ok());
        assert!(judge(limits, &[], &hundred, now).is_err());
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::of(a), AddressKey::of(b));
        assert_ne!(AddressKey::of(a), AddressKey::of(c));
        assert_eq!(AddressKey::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(AddressKey::of(mapped).to_string(), "192.0.2.7");
    }

    #[test]
    fn the_client_address_is_read_from_the_end_of_x_forwarded_for_by_trusted_hops() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        headers.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        assert_eq!(client_address(peer, &headers, None), peer);
        assert_eq!(
            client_address(peer, &headers, Some(1)).to_string(),
            "10.0.0.2"
        );
        assert_eq!(
            client_address(peer, &headers, Some(2)).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_address(peer, &headers, Some(5)).to_string(),
            "6.6.6.6",
            "fewer entries than hops: the first"
        );
        let mut garbage = HeaderMap::new();
        garbage.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client_address(peer, &garbage, Some(1)), peer);
        let mut with_port = HeaderMap::new();
        with_port.insert("x-forwarded-for", "[2001:db8::1]:4711".parse().unwrap());
        assert_eq!(
            client_address(peer, &with_port, Some(1)).to_string(),
            "2001:db8::1"
        );
        assert_eq!(client_address(peer, &HeaderMap::new(), Some(1)), peer);
    }

    #[test]
    fn exam_networks_contain_their_addresses() {
        let nets: Vec<IpNet> = vec![
            "10.1.0.0/16".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert!(in_exam_network("10.1.200.3".parse().unwrap(), &nets));
        assert!(in_exam_network("::ffff:10.1.0.9".parse().unwrap(), &nets));
        assert!(in_exam_network("2001:db8:5::1".parse().unwrap(), &nets));
        assert!(!in_exam_network("10.2.0.1".parse().unwrap(), &nets));
    }
}
