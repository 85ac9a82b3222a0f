//! A plain bitset over member numbers, one bit per member. The audience index keeps one
//! beside the roaring bitmap of each dense feature (RFM score levels, points bands, lifecycle
//! stages, widely held tags) so that an `all` of such predicates is one pass over machine
//! words, with no intermediate bitmaps.

#[derive(Debug, Clone, Default)]
pub struct Dense(Vec<u64>);

impl Dense {
    /// Room for `words` × 64 members, all unset.
    pub fn with_words(words: usize) -> Dense {
        Dense(vec![0; words])
    }

    pub fn grow_to(&mut self, words: usize) {
        if self.0.len() < words {
            self.0.resize(words, 0);
        }
    }

    pub fn set(&mut self, no: u32, on: bool) {
        let (w, bit) = ((no / 64) as usize, no % 64);
        self.grow_to(w + 1);
        if on {
            self.0[w] |= 1 << bit;
        } else {
            self.0[w] &= !(1 << bit);
        }
    }

    pub fn get(&self, no: u32) -> bool {
        self.0.get((no / 64) as usize).is_some_and(|w| w & (1 << (no % 64)) != 0)
    }

    pub fn words(&self) -> &[u64] {
        &self.0
    }

    pub fn bytes(&self) -> usize {
        self.0.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_and_clear() {
        let mut d = Dense::default();
        d.set(130, true);
        d.set(3, true);
        d.set(3, false);
        assert!(d.get(130) && !d.get(3) && !d.get(100_000));
        assert_eq!(d.words().len(), 3);
    }
}
