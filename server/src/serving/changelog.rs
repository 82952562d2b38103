//! The retained change log of one served list, and its changes. A list can keep a million changes, and every
//! advance of its snapshot (each consensus step) adds a few: the log is held in shared runs, so
//! an advance appends a run and trims whole runs from the front instead of copying the log. A
//! snapshot's log is a cheap clone of the previous one's plus the new run. A retained change costs
//! a pointer to its entry and a bit for its op. Pure.

use std::sync::Arc;

use super::entry::SharedEntry;

/// Whether a change added (or updated) or removed an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert or update.
    Add,
    /// Removal.
    Remove,
}

/// One change, as it is appended to a log.
#[derive(Debug, Clone)]
pub struct Change {
    /// Add or remove.
    pub op: Op,
    /// The entry as added, or as it was when removed; its seq is the change's.
    pub entry: SharedEntry,
}

impl Change {
    /// Its seq (the delta cursor).
    pub fn seq(&self) -> i64 {
        self.entry.seq
    }
}

/// Runs are merged up to this many changes (and a large append is split into runs of it), so a
/// log of a million changes is a few hundred runs and an advance copies at most this many.
const MAX_RUN: usize = 4096;

/// Changes in seq order: their entries, and one bit each saying which are removals. A log can
/// hold a million changes, so a change costs a pointer and a bit, not the 16 bytes of a
/// [`Change`].
#[derive(Debug)]
struct Run {
    entries: Box<[SharedEntry]>,
    removed: Box<[u64]>,
}

impl Run {
    fn new<'a>(changes: impl Iterator<Item = (Op, &'a SharedEntry)>) -> Run {
        let mut entries = Vec::new();
        let mut removed = Vec::new();
        for (i, (op, entry)) in changes.enumerate() {
            if i % 64 == 0 {
                removed.push(0);
            }
            if op == Op::Remove
                && let Some(word) = removed.last_mut()
            {
                *word |= 1 << (i % 64);
            }
            entries.push(entry.clone());
        }
        Run { entries: entries.into_boxed_slice(), removed: removed.into_boxed_slice() }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn op(&self, i: usize) -> Op {
        if self.removed[i / 64] & (1 << (i % 64)) != 0 { Op::Remove } else { Op::Add }
    }

    /// The changes from `i` on.
    fn from(&self, i: usize) -> impl Iterator<Item = (Op, &SharedEntry)> {
        self.entries.iter().enumerate().skip(i).map(|(i, entry)| (self.op(i), entry))
    }
}

/// Changes in seq order, held as runs shared between snapshots.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    runs: Vec<Arc<Run>>,
    /// Changes of the first run already trimmed away.
    skip: usize,
    /// Changes retained.
    len: usize,
}

impl ChangeLog {
    /// How many changes are retained.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `changes`, in seq order and all after the log's own. Small runs at the end merge
    /// as a binary counter does (a run merges with the one before while that one is no longer),
    /// so each change is copied a few times in all, not once per advance.
    pub fn append(&mut self, changes: &[Change]) {
        for run in changes.chunks(MAX_RUN) {
            self.len += run.len();
            self.runs.push(Arc::new(Run::new(run.iter().map(|c| (c.op, &c.entry)))));
            while let [.., before, last] = self.runs.as_slice()
                && before.len() <= last.len()
                && before.len() + last.len() <= MAX_RUN
                // The first run may be partly trimmed; it is never merged, so `skip` stays true.
                && self.runs.len() > 2
            {
                let merged = Arc::new(Run::new(before.from(0).chain(last.from(0))));
                self.runs.truncate(self.runs.len() - 2);
                self.runs.push(merged);
            }
        }
    }

    /// Keeps the newest `keep` changes; returns the seq of the newest change dropped, if any.
    pub fn trim(&mut self, keep: usize) -> Option<i64> {
        let mut dropped = None;
        while self.len > keep {
            let Some(first) = self.runs.first() else { break };
            let left = first.len() - self.skip;
            let cut = left.min(self.len - keep);
            dropped = Some(first.entries[self.skip + cut - 1].seq);
            self.len -= cut;
            if cut == left {
                self.runs.remove(0);
                self.skip = 0;
            } else {
                self.skip += cut;
            }
        }
        dropped
    }

    /// The retained changes with `after < seq <= upto`, in seq order: whether each added or
    /// removed, and its entry.
    pub fn between(&self, after: i64, upto: i64) -> impl Iterator<Item = (Op, &SharedEntry)> {
        // Runs wholly at or before `after` are skipped by their last seq, the rest cut by search.
        let first = self.runs.partition_point(|run| run.entries.last().is_some_and(|e| e.seq <= after));
        self.runs[first..].iter().enumerate().flat_map(move |(i, run)| {
            let skip = if first + i == 0 { self.skip } else { 0 };
            let start = skip + run.entries[skip..].partition_point(|e| e.seq <= after);
            let end = skip + run.entries[skip..].partition_point(|e| e.seq <= upto);
            run.from(start).take(end.saturating_sub(start))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::entry::{Entry, Meta};

    fn change(seq: i64) -> Change {
        let meta = Arc::new(Meta { scope: "ip".into(), scenario: "s".into(), remediation: "ban".into(), rule: "r".into() });
        let net = format!("192.0.2.{}/32", seq % 250).parse().expect("net");
        let now = time::OffsetDateTime::now_utc();
        // Every third change is a removal, so the ops are checked across runs and merges too.
        let op = if seq % 3 == 0 { Op::Remove } else { Op::Add };
        Change { op, entry: SharedEntry::new(Entry::new(net, meta, now, now + time::Duration::hours(1), seq)) }
    }

    /// The seqs given back, each checked to come with the op it was appended with.
    fn seqs<'a>(changes: impl Iterator<Item = (Op, &'a SharedEntry)>) -> Vec<i64> {
        changes
            .map(|(op, entry)| {
                assert_eq!(op, change(entry.seq).op, "the op of change {}", entry.seq);
                entry.seq
            })
            .collect()
    }

    #[test]
    fn appends_of_any_size_keep_seq_order_and_few_runs() {
        let mut log = ChangeLog::default();
        let mut next = 1;
        for size in [1, 1, 3, 10_000, 1, 2, 7, 5_000, 1] {
            let run: Vec<Change> = (next..next + size).map(change).collect();
            next += size;
            log.append(&run);
        }
        assert_eq!(log.len(), (next - 1) as usize);
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), (1..next).collect::<Vec<_>>());
        assert!(log.runs.len() <= 12, "{} runs", log.runs.len());
        assert!(log.runs.iter().all(|run| run.len() <= MAX_RUN));
        // A thousand single-change advances make a handful of runs, not a thousand.
        for seq in next..next + 1000 {
            log.append(&[change(seq)]);
        }
        assert!(log.runs.len() <= 16, "{} runs", log.runs.len());
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), (1..next + 1000).collect::<Vec<_>>());
    }

    #[test]
    fn trimming_keeps_exactly_the_newest_and_names_the_last_dropped() {
        let mut log = ChangeLog::default();
        for seq in 1..=10 {
            log.append(&[change(seq)]);
        }
        assert_eq!(log.trim(20), None);
        assert_eq!(log.trim(7), Some(3));
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), (4..=10).collect::<Vec<_>>());
        assert_eq!(log.len(), 7);
        log.append(&(11..=9000).map(change).collect::<Vec<_>>());
        assert_eq!(log.trim(5), Some(8995));
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), (8996..=9000).collect::<Vec<_>>());
        assert_eq!(log.trim(0), Some(9000));
        assert!(log.is_empty() && log.between(i64::MIN, i64::MAX).next().is_none());
        log.append(&[change(9001)]);
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), vec![9001]);
    }

    #[test]
    fn between_is_the_changes_after_a_cursor_up_to_a_bound() {
        let mut log = ChangeLog::default();
        for start in (1..=20_000).step_by(1000) {
            log.append(&(start..start + 1000).map(change).collect::<Vec<_>>());
        }
        log.trim(15_000);
        for (after, upto) in [(0, 30_000), (5_000, 5_001), (5_001, 20_000), (7_777, 12_345), (19_999, 20_000), (20_000, 30_000)] {
            let expected: Vec<i64> = (after.max(5_000) + 1..=upto.min(20_000)).collect();
            assert_eq!(seqs(log.between(after, upto)), expected, "after {after} upto {upto}");
        }
        assert!(log.between(9_000, 8_000).next().is_none());
    }

    #[test]
    fn a_clone_is_unaffected_by_what_is_appended_or_trimmed_after() {
        let mut log = ChangeLog::default();
        log.append(&(1..=100).map(change).collect::<Vec<_>>());
        let before = log.clone();
        log.append(&(101..=200).map(change).collect::<Vec<_>>());
        log.trim(50);
        assert_eq!(seqs(before.between(i64::MIN, i64::MAX)), (1..=100).collect::<Vec<_>>());
        assert_eq!(seqs(log.between(i64::MIN, i64::MAX)), (151..=200).collect::<Vec<_>>());
    }
}
