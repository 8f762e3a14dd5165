//! Tags: small integers naming the requests in flight on a hardware queue.

/// A fixed-size bitmap of free tags, owned by one hardware queue (so no atomics).
#[derive(Debug, Clone)]
pub struct TagBitmap {
    /// Bit set = tag free.
    words: Vec<u64>,
    depth: u16,
    used: u16,
}

impl TagBitmap {
    pub fn new(depth: u16) -> Self {
        let mut words = vec![0u64; usize::from(depth).div_ceil(64)];
        for tag in 0..depth {
            words[usize::from(tag / 64)] |= 1 << (tag % 64);
        }
        TagBitmap {
            words,
            depth,
            used: 0,
        }
    }

    pub fn depth(&self) -> u16 {
        self.depth
    }

    pub fn in_use(&self) -> u16 {
        self.used
    }

    /// The lowest free tag, or `None` when all are in use.
    pub fn alloc(&mut self) -> Option<u16> {
        for (i, word) in self.words.iter_mut().enumerate() {
            if *word != 0 {
                let bit = word.trailing_zeros();
                *word &= !(1 << bit);
                self.used += 1;
                return Some(i as u16 * 64 + bit as u16);
            }
        }
        None
    }

    /// Frees `tag`; `false` if it was not allocated (a caller bug, reported, not fatal).
    pub fn free(&mut self, tag: u16) -> bool {
        if tag >= self.depth {
            return false;
        }
        let (word, bit) = (usize::from(tag / 64), tag % 64);
        if self.words[word] & (1 << bit) != 0 {
            return false;
        }
        self.words[word] |= 1 << bit;
        self.used -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_tag_once() {
        let mut tags = TagBitmap::new(130);
        let all: Vec<u16> = std::iter::from_fn(|| tags.alloc()).collect();
        assert_eq!(all, (0..130).collect::<Vec<_>>());
        assert_eq!(tags.alloc(), None);
        assert!(tags.free(64));
        assert!(!tags.free(64), "double free is refused");
        assert!(!tags.free(130), "out of range is refused");
        assert_eq!(tags.alloc(), Some(64));
        assert_eq!(tags.in_use(), 130);
    }
}
