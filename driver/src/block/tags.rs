//! Tags: small integers naming the requests in flight on a hardware queue.

/// The free tags of one hardware queue, owned by its thread (so no atomics): a stack, so the
/// tag freed last is reused first and its record and ring slot are still in the cache.
/// Whether a tag is in flight is the queue's record's business; this only counts.
#[derive(Debug, Clone)]
pub struct FreeTags {
    free: Vec<u16>,
    depth: u16,
}

impl FreeTags {
    pub fn new(depth: u16) -> Self {
        FreeTags {
            free: (0..depth).rev().collect(),
            depth,
        }
    }

    pub fn depth(&self) -> u16 {
        self.depth
    }

    pub fn in_use(&self) -> u16 {
        self.depth - self.free.len() as u16
    }

    /// A free tag (the lowest, while none has been freed), or `None` when all are in use.
    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        self.free.pop()
    }

    /// Gives `tag` back. The caller frees only tags it allocated, once (its records say which
    /// are in flight); the stack never grows past the depth, so this never allocates.
    #[inline]
    pub fn free(&mut self, tag: u16) {
        debug_assert!(
            tag < self.depth && !self.free.contains(&tag),
            "tag {tag} freed twice"
        );
        if self.free.len() < usize::from(self.depth) {
            self.free.push(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_tag_once_and_reuses_the_last_freed_first() {
        let mut tags = FreeTags::new(130);
        let all: Vec<u16> = std::iter::from_fn(|| tags.alloc()).collect();
        assert_eq!(all, (0..130).collect::<Vec<_>>());
        assert_eq!(tags.alloc(), None);
        tags.free(64);
        tags.free(7);
        assert_eq!(tags.in_use(), 128);
        assert_eq!(tags.alloc(), Some(7));
        assert_eq!(tags.alloc(), Some(64));
        assert_eq!(tags.in_use(), 130);
    }
}
