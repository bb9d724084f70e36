//! Sending a consumer's acknowledgements: which runs of settled deliveries
//! can go as one frame, and the task-side sender that writes them.

use super::error::AmqpError;
use crate::bus::ack::Settle;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Channel;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a settled delivery may wait behind an older unsettled one
/// before it is acknowledged on its own.
const ACK_LINGER: Duration = Duration::from_millis(10);
/// A broker frame not written by then means the connection is gone.
pub(super) const ACK_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which acknowledgements to send. Deliveries settle in any order, and a
/// `multiple` ack covers every unacknowledged tag up to its own, so one
/// frame (and one broker operation) can cover a run only where no older
/// delivery is still unsettled.
#[derive(Default)]
pub(super) struct AckRuns {
    open: BTreeSet<u64>,
    done: BTreeSet<u64>,
}

impl AckRuns {
    pub(super) fn delivered(&mut self, tag: u64) {
        self.open.insert(tag);
    }

    fn settled(&mut self, tag: u64) {
        if self.open.remove(&tag) {
            self.done.insert(tag);
        }
    }

    /// Rejected (already sent): no ack may name or cover it, and it no
    /// longer holds back the run behind it.
    fn rejected(&mut self, tag: u64) {
        self.open.remove(&tag);
    }

    /// The acks to send now, as (tag, multiple): the settled run below the
    /// oldest open delivery as one; with `all`, the settled ones behind it
    /// too, one by one, so that a delivery stuck on a slow link does not
    /// hold the others' prefetch slots.
    fn take(&mut self, all: bool) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let end = match self.open.first() {
            Some(&oldest) => self.done.range(..oldest).next_back().copied(),
            None => self.done.last().copied(),
        };
        if let Some(end) = end {
            let later = self.done.split_off(&(end + 1));
            let run = std::mem::replace(&mut self.done, later);
            out.push((end, run.len() > 1));
        }
        if all {
            out.extend(
                std::mem::take(&mut self.done)
                    .into_iter()
                    .map(|t| (t, false)),
            );
        }
        out
    }

    fn waiting(&self) -> usize {
        self.done.len()
    }
}

type AckSend = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AmqpError>> + Send>>;

/// Sends a consumer's acknowledgements as `AckRuns` decides: the run below
/// the oldest open delivery at once, the rest after `ACK_LINGER`.
pub(super) struct AckSender {
    ch: Channel,
    pub(super) runs: AckRuns,
    /// When the settled deliveries behind an open one go out anyway.
    pub(super) linger: Option<tokio::time::Instant>,
    /// Not awaited inline: lapin resolves an ack once written.
    pub(super) sending: futures::stream::FuturesUnordered<AckSend>,
}

impl AckSender {
    pub(super) fn new(ch: &Channel) -> AckSender {
        AckSender {
            ch: ch.clone(),
            runs: AckRuns::default(),
            linger: None,
            sending: Default::default(),
        }
    }

    /// Takes `first` and whatever else has settled meanwhile, and sends
    /// the run that can go now. A reject is sent (and awaited) before any
    /// later ack is made: a multiple ack must not cover it, or the message
    /// is gone instead of dead-lettered.
    pub(super) async fn settled(
        &mut self,
        first: Settle,
        more: &mut mpsc::UnboundedReceiver<Settle>,
    ) -> Result<(), AmqpError> {
        let mut next = Some(first);
        while let Some(s) = next {
            match s {
                Settle::Ack(t) => self.runs.settled(t),
                Settle::Reject(t) => {
                    reject(&self.ch, t).await?;
                    self.runs.rejected(t);
                }
            }
            next = more.try_recv().ok();
        }
        self.send(false);
        Ok(())
    }

    pub(super) fn send(&mut self, all: bool) {
        for (t, multiple) in self.runs.take(all) {
            let ch = self.ch.clone();
            self.sending.push(Box::pin(async move {
                match tokio::time::timeout(
                    ACK_SEND_TIMEOUT,
                    ch.basic_ack(t, BasicAckOptions { multiple }),
                )
                .await
                {
                    Ok(r) => r.map_err(AmqpError::from),
                    // lapin never answers once its connection is gone.
                    Err(_) => Err(AmqpError::Broker(
                        "an acknowledgement was not sent in time".into(),
                    )),
                }
            }));
        }
        self.linger = match (self.runs.waiting(), self.linger) {
            (0, _) => None,
            (_, Some(at)) => Some(at),
            (_, None) => Some(tokio::time::Instant::now() + ACK_LINGER),
        };
    }
}

/// Rejects a delivery without requeue (to the dead-letter queue); bounded,
/// as lapin may never answer once its connection is gone.
pub(super) async fn reject(ch: &Channel, tag: u64) -> Result<(), AmqpError> {
    tokio::time::timeout(
        ACK_SEND_TIMEOUT,
        ch.basic_reject(tag, BasicRejectOptions { requeue: false }),
    )
    .await
    .map_err(|_| AmqpError::Broker("a reject was not sent in time".into()))??;
    Ok(())
}

/// Fires once settled deliveries have waited `ACK_LINGER` behind an open
/// one (or at any other optional deadline); never without one.
pub(super) async fn lingered(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::AckRuns;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Deliver,
        /// An unreadable message: rejected at once, never in the runs.
        Reject,
        Settle(prop::sample::Index),
        /// Its token is dropped: the delivery stays open for good.
        Drop(prop::sample::Index),
        /// Not this deskbridge's (an unknown link): rejected by the
        /// dispatcher, to the dead-letter queue.
        Refuse(prop::sample::Index),
        Take(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Deliver),
            1 => Just(Op::Reject),
            3 => any::<prop::sample::Index>().prop_map(Op::Settle),
            1 => any::<prop::sample::Index>().prop_map(Op::Drop),
            1 => any::<prop::sample::Index>().prop_map(Op::Refuse),
            2 => any::<bool>().prop_map(Op::Take),
        ]
    }

    proptest! {
        /// Whatever the order deliveries come, settle, are rejected or
        /// dropped in, the acks sent name only unacknowledged tags (the
        /// broker closes the channel on an unknown one), cover only settled
        /// deliveries (an early ack loses the message in a crash), and in
        /// the end cover every settled one.
        #[test]
        fn acks_cover_each_settled_delivery_once(ops in proptest::collection::vec(op(), 1..120)) {
            let mut runs = AckRuns::default();
            let mut next = 1u64;
            let mut open: Vec<u64> = Vec::new();
            // The broker's view: delivered and neither acked nor rejected.
            let mut unacked = BTreeSet::new();
            let mut settled = BTreeSet::new();
            let apply = |acks: Vec<(u64, bool)>, unacked: &mut BTreeSet<u64>, settled: &BTreeSet<u64>| {
                for (t, multiple) in acks {
                    prop_assert!(unacked.contains(&t), "tag {t} is not unacknowledged");
                    let covered: Vec<u64> = if multiple {
                        unacked.range(..=t).copied().collect()
                    } else {
                        vec![t]
                    };
                    for c in covered {
                        prop_assert!(settled.contains(&c), "tag {c} acknowledged before it settled");
                        unacked.remove(&c);
                    }
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Deliver => {
                        runs.delivered(next);
                        open.push(next);
                        unacked.insert(next);
                        next += 1;
                    }
                    Op::Reject => next += 1,
                    Op::Settle(i) if !open.is_empty() => {
                        let t = open.remove(i.index(open.len()));
                        runs.settled(t);
                        settled.insert(t);
                    }
                    Op::Drop(i) if !open.is_empty() => {
                        open.remove(i.index(open.len()));
                    }
                    Op::Refuse(i) if !open.is_empty() => {
                        // The reject goes out before any later ack.
                        let t = open.remove(i.index(open.len()));
                        runs.rejected(t);
                        unacked.remove(&t);
                    }
                    Op::Take(all) => apply(runs.take(all), &mut unacked, &settled)?,
                    _ => {}
                }
            }
            apply(runs.take(true), &mut unacked, &settled)?;
            let left: Vec<u64> = unacked.intersection(&settled).copied().collect();
            prop_assert!(left.is_empty(), "settled, never acknowledged: {left:?}");
        }
    }

    #[test]
    fn a_run_goes_as_one_frame() {
        let mut runs = AckRuns::default();
        for t in 1..=5 {
            runs.delivered(t);
        }
        for t in [2, 1, 3, 5] {
            runs.settled(t);
        }
        // 4 is still open: 1..=3 go as one, 5 waits unless forced.
        assert_eq!(runs.take(false), vec![(3, true)]);
        assert_eq!(runs.waiting(), 1);
        assert_eq!(runs.take(true), vec![(5, false)]);
        runs.settled(4);
        assert_eq!(runs.take(false), vec![(4, false)]);
    }
}
