//! [`Members`]: the known members in id order, in a list that nodes knowing the same members
//! can share.
//!
//! Every node of a cluster holds the whole membership, so at 10,000 nodes in one process (the
//! simulator) a list per node would take 800 MB. A list handed over whole ([`Members::share`]) is kept
//! behind an `Arc` and copied only when this node's membership first changes; it may hold the
//! local id, which is then skipped by position, so one list serves every node. A node fed
//! member by member (the runtime) owns its list from the start and never pays for a copy.

use std::sync::Arc;

/// The known members, sorted and deduplicated, never the local id.
#[derive(Debug)]
pub(crate) struct Members<I> {
    list: Arc<Vec<I>>,
    /// Where the local id sits in a shared `list`, if it does: that entry is not a member.
    local_at: Option<usize>,
}

impl<I: Ord + Clone> Members<I> {
    pub(crate) fn new() -> Self {
        Self {
            list: Arc::new(Vec::new()),
            local_at: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len() - usize::from(self.local_at.is_some())
    }

    pub(crate) fn contains(&self, peer: &I) -> bool {
        self.list
            .binary_search(peer)
            .is_ok_and(|at| Some(at) != self.local_at)
    }

    /// The `i`th member in id order.
    fn at(&self, i: usize) -> &I {
        let skip = self.local_at.is_some_and(|local| i >= local);
        &self.list[i + usize::from(skip)]
    }

    /// Every member in id order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &I> {
        (0..self.len()).map(|i| self.at(i))
    }

    /// Takes `list` (sorted, without repeats; it may hold `local`) as the whole membership
    /// without copying it, if no member is known yet; otherwise adds its entries one by one.
    /// Returns how many members are new.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn share(&mut self, local: &I, list: Arc<Vec<I>>) -> usize {
        if self.list.is_empty() && list.windows(2).all(|w| w[0] < w[1]) {
            self.local_at = list.binary_search(local).ok();
            self.list = list;
            return self.len();
        }
        self.add(local, list.iter().cloned(), |_| {})
    }

    /// Adds `peers`, skipping `local`; `arrived` sees the appended ids (some may be known
    /// already) before they are merged in. Returns how many members are new.
    pub(crate) fn add(
        &mut self,
        local: &I,
        peers: impl IntoIterator<Item = I>,
        arrived: impl FnOnce(&[I]),
    ) -> usize {
        let before = self.len();
        let list = self.owned();
        let old = list.len();
        list.extend(peers.into_iter().filter(|p| p != local));
        if list.len() == old {
            return 0;
        }
        arrived(&list[old..]);
        list.sort_unstable();
        list.dedup();
        list.len() - before
    }

    /// Removes `peer`; false if it was not a member.
    pub(crate) fn remove(&mut self, peer: &I) -> bool {
        if !self.contains(peer) {
            return false;
        }
        let list = self.owned();
        if let Ok(at) = list.binary_search(peer) {
            list.remove(at);
        }
        true
    }

    /// This node's own list, copied out of a shared one (without the local id) if need be.
    fn owned(&mut self) -> &mut Vec<I> {
        let list = Arc::make_mut(&mut self.list);
        if let Some(at) = self.local_at.take() {
            list.remove(at);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_list_skips_the_local_id_and_is_copied_on_the_first_change() {
        let everyone = Arc::new((0u64..6).collect::<Vec<_>>());
        let mut a = Members::new();
        let mut b = Members::new();
        assert_eq!(a.share(&2, everyone.clone()), 5);
        assert_eq!(b.share(&7, everyone.clone()), 6, "local not in the list");
        assert_eq!(Arc::strong_count(&everyone), 3, "shared, not copied");
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [0, 1, 3, 4, 5]);
        assert_eq!(a.iter().len(), 5);
        assert!(!a.contains(&2) && a.contains(&3) && !a.contains(&6));

        assert!(a.remove(&4));
        assert!(!a.remove(&2), "the local id is no member");
        assert_eq!(Arc::strong_count(&everyone), 2, "a has its own copy now");
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [0, 1, 3, 5]);
        assert_eq!(b.iter().len(), 6, "b still sees the whole list");

        let mut seen = Vec::new();
        assert_eq!(a.add(&2, [9, 2, 1], |new| seen.extend_from_slice(new)), 1);
        assert_eq!(seen, [9, 1], "the local id is never appended");
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [0, 1, 3, 5, 9]);
    }

    #[test]
    fn an_unsorted_list_or_known_members_are_added_one_by_one() {
        let mut m = Members::new();
        assert_eq!(m.share(&0u64, Arc::new(vec![3, 1, 1, 0])), 2);
        assert_eq!(m.iter().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            m.share(&0, Arc::new(vec![1, 2])),
            1,
            "members known already"
        );
        assert_eq!(m.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
    }
}
