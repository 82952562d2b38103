//! Seeded pseudo-random numbers for the simulator: SplitMix64 to derive seeds, xoshiro256** for
//! streams. Kept here rather than taken from a crate so a dependency update can never change a
//! scorecard. Each part of the world draws from its own stream, derived from the run seed and a
//! label, so adding an attacker population does not reshuffle every other draw.

/// A xoshiro256** generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes a seed with labels into one 64-bit value (stable across platforms and versions).
pub fn mix(seed: u64, labels: &[u64]) -> u64 {
    let mut state = seed;
    let mut out = splitmix(&mut state);
    for &label in labels {
        state ^= label.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        out ^= splitmix(&mut state);
    }
    out
}

impl Rng {
    /// A stream for `seed` and `labels`.
    pub fn new(seed: u64, labels: &[u64]) -> Self {
        let mut state = mix(seed, labels);
        let mut s = [0; 4];
        for x in &mut s {
            *x = splitmix(&mut state);
        }
        Rng { s }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `n` (n > 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }

    /// Uniform in [lo, hi].
    pub fn uniform(&mut self, [lo, hi]: [f64; 2]) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [lo, hi].
    pub fn between(&mut self, [lo, hi]: [u32; 2]) -> u32 {
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// Log-uniform in [lo, hi] (lo > 0): as many values in 1–10 as in 10–100.
    pub fn log_uniform(&mut self, [lo, hi]: [f64; 2]) -> f64 {
        let (a, b) = (lo.max(1e-9).ln(), hi.max(1e-9).ln());
        (a + (b - a) * self.f64()).exp()
    }

    /// Log-uniform integer in [lo, hi].
    pub fn log_between(&mut self, [lo, hi]: [u32; 2]) -> u32 {
        if hi == 0 {
            return 0;
        }
        let v = self.log_uniform([f64::from(lo.max(1)), f64::from(hi) + 1.0]).floor() as u32;
        v.clamp(lo, hi)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A count with mean `mean`: its integer part, plus one with the fractional part's probability.
    pub fn count(&mut self, mean: f64) -> u64 {
        let whole = mean.max(0.0).floor();
        whole as u64 + u64::from(self.chance(mean - whole))
    }
}

/// Weighted choice by binary search over cumulative weights.
#[derive(Debug, Clone, Default)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    /// From non-negative weights.
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        Weighted { cumulative }
    }

    /// An index drawn by weight.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.f64() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len().saturating_sub(1))
    }
}

/// A bijection on `bits`-bit integers, to hand out distinct but scattered addresses from a counter.
pub fn scatter(x: u64, bits: u32, key: u64) -> u64 {
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let mut v = x & mask;
    for round in 0..3u64 {
        v = v.wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1) & mask;
        v ^= (key.rotate_left(round as u32 * 21)) & mask;
        v ^= v >> (bits / 2).max(1);
    }
    v & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, &[1]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, &[1]).next_u64(), Rng::new(7, &[2]).next_u64());
    }

    #[test]
    fn scatter_is_a_bijection() {
        let mut seen: Vec<u64> = (0..1 << 12).map(|x| scatter(x, 12, 99)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1 << 12);
    }
}
