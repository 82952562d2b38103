//! Rates per source for the two unauthenticated operations that cost an argon2 hash: machine
//! registration and login. Each is limited per client address and per client network (its /24
//! for IPv4, its /64 for IPv6, configurable), so spreading requests over the addresses of one
//! network gains nothing. GCRA (governor), in this process: with N replicas behind a balancer
//! the bound is N times the configured one.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::domain::net::canonical_ip;

/// Keys kept before the limiters forget the ones back at full capacity.
const FORGET_ABOVE: usize = 100_000;

/// A rate: `per_hour` on average, with up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Requests per hour on average.
    pub per_hour: u32,
    /// Requests admitted at once.
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        let per_hour = NonZeroU32::new(self.per_hour).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(std::time::Duration::from_secs(3600) / per_hour.get())
            .unwrap_or_else(|| Quota::per_hour(per_hour))
            .allow_burst(burst)
    }
}

/// The rates of one operation.
#[derive(Debug, Clone, Copy)]
pub struct SourceRates {
    /// Per client address.
    pub per_address: Rate,
    /// Per client network.
    pub per_network: Rate,
}

/// How wide a client network is.
#[derive(Debug, Clone, Copy)]
pub struct NetworkWidth {
    /// IPv4 prefix length (24: a /24).
    pub v4_prefix: u8,
    /// IPv6 prefix length (64: a /64, what one subscriber gets).
    pub v6_prefix: u8,
}

impl NetworkWidth {
    /// The network `ip` is counted in.
    pub fn network(self, ip: IpAddr) -> IpNet {
        let ip = canonical_ip(ip);
        let len = if ip.is_ipv4() { self.v4_prefix.min(32) } else { self.v6_prefix.min(128) };
        IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
    }
}

struct Limits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_network: DefaultKeyedRateLimiter<IpNet>,
}

impl Limits {
    fn new(rates: SourceRates) -> Self {
        Limits {
            per_address: RateLimiter::keyed(rates.per_address.quota()),
            per_network: RateLimiter::keyed(rates.per_network.quota()),
        }
    }

    /// `Err(seconds)` to wait when over either rate.
    fn check(&self, ip: IpAddr, network: IpNet) -> Result<(), u64> {
        if self.per_address.len() > FORGET_ABOVE {
            self.per_address.retain_recent();
        }
        if self.per_network.len() > FORGET_ABOVE {
            self.per_network.retain_recent();
        }
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1;
        self.per_address.check_key(&canonical_ip(ip)).map_err(wait)?;
        self.per_network.check_key(&network).map_err(wait)
    }
}

/// Registration and login rates per source.
pub struct SourceLimits {
    width: NetworkWidth,
    register: Limits,
    login: Limits,
}

impl SourceLimits {
    /// Limits with the given rates and network width.
    pub fn new(width: NetworkWidth, register: SourceRates, login: SourceRates) -> Self {
        SourceLimits { width, register: Limits::new(register), login: Limits::new(login) }
    }

    /// Whether `ip` may register a machine now: `Err(seconds)` to wait otherwise.
    pub fn check_register(&self, ip: IpAddr) -> Result<(), u64> {
        self.register.check(ip, self.width.network(ip))
    }

    /// Whether `ip` may log a machine in now: `Err(seconds)` to wait otherwise.
    pub fn check_login(&self, ip: IpAddr) -> Result<(), u64> {
        self.login.check(ip, self.width.network(ip))
    }

    /// The network `ip` is counted in.
    pub fn network(&self, ip: IpAddr) -> IpNet {
        self.width.network(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32, per_network: u32) -> SourceLimits {
        let rates = SourceRates {
            per_address: Rate { per_hour: per_address, burst: per_address },
            per_network: Rate { per_hour: per_network, burst: per_network },
        };
        SourceLimits::new(NetworkWidth { v4_prefix: 24, v6_prefix: 64 }, rates, rates)
    }

    #[test]
    fn addresses_of_one_network_share_its_rate() {
        let limits = limits(2, 5);
        let admitted = (1..=50).filter(|i| limits.check_register(format!("203.0.113.{i}").parse().unwrap()).is_ok()).count();
        assert_eq!(admitted, 5);
        assert!(limits.check_register("203.0.114.1".parse().unwrap()).is_ok());
        let admitted =
            (1..=50).filter(|i| limits.check_register(format!("2001:db8:0:7::{i:x}").parse().unwrap()).is_ok()).count();
        assert_eq!(admitted, 5);
        assert!(limits.check_register("2001:db8:0:8::1".parse().unwrap()).is_ok());
        // Logins are counted apart from registrations.
        assert!(limits.check_login("203.0.113.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn one_address_is_held_to_its_own_rate() {
        let limits = limits(2, 100);
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(limits.check_login(ip).is_ok());
        assert!(limits.check_login(ip).is_ok());
        let wait = limits.check_login(ip).unwrap_err();
        assert!(wait >= 1);
        assert_eq!(limits.network("::ffff:198.51.100.9".parse().unwrap()).to_string(), "198.51.100.0/24");
    }
}
