//! Transactions read from a database's change log but not yet in a batch:
//! a look at the log gives more than the batch has room for, and a batch
//! takes only whole transactions (never half of one); and the wait
//! between two looks at a quiet log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::contract::Message;

/// Longest sleep between two looks at a quiet change log.
const POLL: Duration = Duration::from_millis(500);

/// Between two looks at a change log that had nothing new: sleeps (at most
/// `POLL`) and says whether to look again, or `false` once `wait`, counted
/// from `started`, is over (`None`, --once: no waiting at all).
pub(super) fn wait_more(started: Instant, wait: Option<Duration>) -> bool {
    let Some(wait) = wait else {
        return false;
    };
    let left = wait.saturating_sub(started.elapsed());
    if left.is_zero() {
        return false;
    }
    std::thread::sleep(left.min(POLL));
    true
}

/// The queue, each transaction with the decoding rows it took.
pub(super) struct Transactions<P> {
    queue: VecDeque<(Vec<Message<P>>, usize)>,
}

impl<P> Default for Transactions<P> {
    fn default() -> Self {
        Transactions {
            queue: VecDeque::new(),
        }
    }
}

impl<P> Transactions<P> {
    /// Queues one transaction's messages.
    pub(super) fn push(&mut self, messages: Vec<Message<P>>, rows: usize) {
        self.queue.push_back((messages, rows));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The decoding rows of the queued transactions.
    pub(super) fn rows(&self) -> usize {
        self.queue.iter().map(|(_, rows)| rows).sum()
    }

    /// Whole transactions from the front, up to `max` messages (at least
    /// one transaction, however large).
    pub(super) fn next(&mut self, max: usize) -> Vec<Message<P>> {
        let mut out: Vec<Message<P>> = Vec::new();
        while let Some((messages, _)) = self.queue.front() {
            if !out.is_empty() && out.len() + messages.len() > max {
                break;
            }
            let (messages, _) = self.queue.pop_front().expect("a front entry");
            out.extend(messages);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::broker::contract::Body;

    fn tx(n: usize) -> Vec<Message<u32>> {
        (0..n)
            .map(|i| Message {
                position: i as u32,
                subject: String::new(),
                body: Body::Gone,
                ack: None,
            })
            .collect()
    }

    #[test]
    fn a_batch_takes_whole_transactions() {
        let mut q = Transactions::default();
        q.push(tx(5), 7);
        q.push(tx(3), 5);
        q.push(tx(1), 3);
        assert_eq!(q.rows(), 15);
        assert_eq!(q.next(2).len(), 5, "one transaction, however large");
        assert_eq!(q.next(4).len(), 4, "two that fit");
        assert!(q.is_empty());
    }
}
