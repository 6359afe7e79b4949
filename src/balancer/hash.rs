//! Consistent hashing for `lbmethod=hash`: Maglev (Eisenbud et al., NSDI 2016).
//!
//! Every usable member fills slots of a prime-sized table following its own permutation; a
//! key maps to `table[hash(key) % M]`. When a member leaves, only about its share of keys
//! move, and lookups are one array index.

/// Table size: a prime well above members x 100, so shares stay within about 1 %.
pub const TABLE_SIZE: usize = 65_537;

/// FNV-1a, 64 bit: stable across runs and platforms (keys must map the same way on every
/// worker and after restarts).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Second, independent hash for the permutation's skip (SplitMix64 finaliser over FNV).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Clone, Debug)]
pub struct Maglev {
    table: Vec<u16>,
}

impl Maglev {
    /// `members`: (index, name, weight) of the usable members. Names (not indexes) seed the
    /// permutations, so a member keeps its slots when others come and go.
    pub fn build(members: &[(usize, &str, u32)]) -> Option<Maglev> {
        if members.is_empty() {
            return None;
        }
        let m = TABLE_SIZE as u64;
        let perms: Vec<(u64, u64)> = members
            .iter()
            .map(|(_, name, _)| {
                let h = fnv1a(name.as_bytes());
                (h % m, mix(h) % (m - 1) + 1)
            })
            .collect();
        // Weighted turns: each round, a member fills as many slots as its weight relative to
        // the smallest.
        let min_w = members.iter().map(|m| m.2.max(1)).min().unwrap_or(1);
        let turns: Vec<u32> = members
            .iter()
            .map(|m| (m.2.max(1) + min_w / 2) / min_w)
            .collect();
        let mut next = vec![0u64; members.len()];
        let mut table = vec![u16::MAX; TABLE_SIZE];
        let mut filled = 0;
        'fill: loop {
            for (i, (offset, skip)) in perms.iter().enumerate() {
                for _ in 0..turns[i] {
                    let mut c = (offset + next[i] * skip) % m;
                    while table[c as usize] != u16::MAX {
                        next[i] += 1;
                        c = (offset + next[i] * skip) % m;
                    }
                    table[c as usize] = members[i].0 as u16;
                    next[i] += 1;
                    filled += 1;
                    if filled == TABLE_SIZE {
                        break 'fill;
                    }
                }
            }
        }
        Some(Maglev { table })
    }

    pub fn lookup(&self, key_hash: u64) -> usize {
        // Keys are often short and sequential (user17, user18…), whose FNV hashes share
        // low-order structure: a finaliser spreads them before the modulo.
        self.table[(mix(key_hash) % TABLE_SIZE as u64) as usize] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://10.0.0.{i}:8080")).collect()
    }

    /// Equal-weight members from names.
    fn equal(n: &[String]) -> Vec<(usize, &str, u32)> {
        n.iter()
            .enumerate()
            .map(|(i, s)| (i, s.as_str(), 100))
            .collect()
    }

    #[test]
    fn shares_are_even_and_weights_count() {
        let n = names(4);
        let members = equal(&n);
        let t = Maglev::build(&members).unwrap();
        let mut counts = [0usize; 4];
        for k in 0..100_000u64 {
            counts[t.lookup(fnv1a(&k.to_le_bytes()))] += 1;
        }
        for c in counts {
            assert!((23_000..27_000).contains(&c), "{counts:?}");
        }
        let weighted: Vec<(usize, &str, u32)> =
            vec![(0, n[0].as_str(), 300), (1, n[1].as_str(), 100)];
        let t = Maglev::build(&weighted).unwrap();
        let heavy = (0..100_000u64)
            .filter(|k| t.lookup(fnv1a(&k.to_le_bytes())) == 0)
            .count();
        assert!((72_000..78_000).contains(&heavy), "{heavy}");
    }

    #[test]
    fn short_sequential_string_keys_spread_evenly() {
        let n = names(4);
        let members = equal(&n);
        let t = Maglev::build(&members).unwrap();
        let mut counts = [0usize; 4];
        for u in 0..4000 {
            counts[t.lookup(fnv1a(format!("user{u}").as_bytes()))] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_about_its_share() {
        let n = names(5);
        let all = equal(&n);
        let before = Maglev::build(&all).unwrap();
        let without: Vec<(usize, &str, u32)> = all.iter().copied().filter(|m| m.0 != 2).collect();
        let after = Maglev::build(&without).unwrap();
        let keys = 50_000u64;
        let (mut moved, mut moved_unrelated, mut unrelated) = (0, 0, 0);
        for k in 0..keys {
            let h = fnv1a(&k.to_le_bytes());
            let (a, b) = (before.lookup(h), after.lookup(h));
            if a != b {
                moved += 1;
            }
            if a != 2 {
                unrelated += 1;
                if a != b {
                    moved_unrelated += 1;
                }
            }
        }
        let moved_frac = moved as f64 / keys as f64;
        // The leaving member had about 1/5 of the keys; little else may move.
        assert!(moved_frac < 0.25, "moved {moved_frac}");
        assert!(
            (moved_unrelated as f64) / (unrelated as f64) < 0.05,
            "keys of staying members moved: {moved_unrelated}/{unrelated}"
        );
    }
}
