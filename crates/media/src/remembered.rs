//! A map that keeps only its `N` newest keys: what a sender or receiver remembers about
//! recent RTP packets (which arrived, when each was last resent) without growing with
//! the length of the call.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Keys in the order they were first inserted; past `N`, the oldest is forgotten. Setting
/// a key again changes its value, not its age.
#[derive(Debug)]
pub(crate) struct Remembered<K, V, const N: usize> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V, const N: usize> Default for Remembered<K, V, N> {
    fn default() -> Self {
        Remembered {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Copy + Eq + Hash, V, const N: usize> Remembered<K, V, N> {
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Sets `key` to `value`; a new key may push the oldest out.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key, value).is_some() {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > N {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_key_goes_first_and_setting_a_key_again_keeps_its_age() {
        let mut r: Remembered<u16, u32, 2> = Remembered::default();
        r.insert(1, 10);
        r.insert(2, 20);
        r.insert(1, 11);
        assert_eq!(r.get(&1), Some(&11));
        r.insert(3, 30);
        assert!(!r.contains(&1), "1 was first in, so first out");
        assert_eq!((r.get(&2), r.get(&3)), (Some(&20), Some(&30)));
    }
}
