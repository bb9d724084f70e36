//! The messages of one destination waiting for a worker, per link in queue
//! order, and which links may start one next.

use crate::bus::ack::Ack;
use crate::store::Envelope;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use uuid::Uuid;

/// One waiting message, with the broker acknowledgements it owes (a
/// republished duplicate shares the seq and is acknowledged together).
pub(super) struct Waiting {
    pub(super) env: Envelope,
    pub(super) acks: Vec<Ack>,
    /// Broker: its copy in the store (parked) is what counts; a lost
    /// channel takes only the acknowledgements of a repeat, not it.
    pub(super) stored: bool,
}

impl Waiting {
    pub(super) fn new(env: Envelope) -> Waiting {
        Waiting {
            env,
            acks: vec![],
            stored: false,
        }
    }

    pub(super) fn parked(env: Envelope) -> Waiting {
        Waiting {
            stored: true,
            ..Waiting::new(env)
        }
    }
}

/// The messages not yet handed to a worker, per link in queue order; the
/// links that may be able to start one, in the order they became so; and
/// how many messages wait in all. Handing out work and reporting it then
/// cost the same with ten links as with ten thousand.
#[derive(Default)]
pub(super) struct Backlog {
    by_link: HashMap<Uuid, BTreeMap<u64, Waiting>>,
    /// A hint, not a promise: `next` skips a listed link that is busy,
    /// blocked or empty; whatever frees a link lists it again (`wake`).
    ready: VecDeque<Uuid>,
    listed: HashSet<Uuid>,
    pub(super) len: usize,
}

impl Backlog {
    pub(super) fn wake(&mut self, link: Uuid) {
        if self.listed.insert(link) {
            self.ready.push_back(link);
        }
    }

    /// The waiting message `seq` of `link`, added by `make` if new.
    pub(super) fn entry(
        &mut self,
        link: Uuid,
        seq: u64,
        make: impl FnOnce() -> Waiting,
    ) -> &mut Waiting {
        if !self.contains(link, seq) {
            self.len += 1;
            self.wake(link);
        }
        self.by_link
            .entry(link)
            .or_default()
            .entry(seq)
            .or_insert_with(make)
    }

    pub(super) fn contains(&self, link: Uuid, seq: u64) -> bool {
        self.by_link
            .get(&link)
            .is_some_and(|q| q.contains_key(&seq))
    }

    pub(super) fn last_seq(&self, link: Uuid) -> Option<u64> {
        self.by_link
            .get(&link)
            .and_then(|q| q.last_key_value())
            .map(|(seq, _)| *seq)
    }

    pub(super) fn link_len(&self, link: Uuid) -> usize {
        self.by_link.get(&link).map_or(0, |q| q.len())
    }

    /// The first waiting message of the longest-ready link that `free`
    /// accepts.
    pub(super) fn next(&mut self, free: impl Fn(&Uuid) -> bool) -> Option<(Uuid, u64, Waiting)> {
        while let Some(link) = self.ready.pop_front() {
            self.listed.remove(&link);
            if !free(&link) {
                continue;
            }
            let Some(q) = self.by_link.get_mut(&link) else {
                continue;
            };
            let Some((seq, w)) = q.pop_first() else {
                continue;
            };
            if q.is_empty() {
                self.by_link.remove(&link);
            }
            self.len -= 1;
            return Some((link, seq, w));
        }
        None
    }

    /// Takes all of the link's waiting messages out, in queue order.
    pub(super) fn take_link(&mut self, link: Uuid) -> Vec<(u64, Waiting)> {
        let taken: Vec<(u64, Waiting)> = self
            .by_link
            .remove(&link)
            .map(|q| q.into_iter().collect())
            .unwrap_or_default();
        self.len -= taken.len();
        taken
    }

    /// The link's waiting messages that still owe the broker an
    /// acknowledgement, each with those acknowledgements (taken out).
    pub(super) fn take_acks(&mut self, link: Uuid) -> Vec<(u64, &Envelope, Vec<Ack>)> {
        self.by_link.get_mut(&link).map_or_else(Vec::new, |q| {
            q.iter_mut()
                .filter(|(_, w)| !w.acks.is_empty())
                .map(|(seq, w)| {
                    w.stored = true;
                    (*seq, &w.env, std::mem::take(&mut w.acks))
                })
                .collect()
        })
    }

    /// Forgets the messages that came from a lost broker channel (they
    /// come again on the next one) and its acknowledgements of parked ones
    /// (which stay).
    pub(super) fn forget_delivered(&mut self) {
        for q in self.by_link.values_mut() {
            q.retain(|_, w| {
                if w.stored {
                    w.acks.clear();
                }
                w.acks.is_empty()
            });
        }
        self.by_link.retain(|_, q| !q.is_empty());
        self.len = self.by_link.values().map(|q| q.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Ticket};
    use crate::link::Link;
    use tokio::sync::mpsc;

    fn waiting(acks: usize) -> Waiting {
        let link = Link::new("a", "T1", "b");
        Waiting {
            env: Envelope {
                link_id: link.id,
                dest: "b".into(),
                origin: "a".into(),
                accepted_at: None,
                after: None,
                event: Event::new(
                    "T1",
                    EventKind::TicketCreated {
                        ticket_data: Ticket::default(),
                    },
                ),
            },
            acks: (0..acks)
                .map(|i| Ack::new(i as u64 + 1, mpsc::unbounded_channel().0))
                .collect(),
            stored: false,
        }
    }

    #[test]
    fn the_backlog_hands_out_each_links_first_message_in_the_order_links_became_ready() {
        let (l1, l2, l3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut b = Backlog::default();
        b.entry(l2, 5, || waiting(0));
        b.entry(l1, 3, || waiting(0));
        b.entry(l1, 1, || waiting(0));
        b.entry(l3, 9, || waiting(1));
        // A repeat is the same message, not a new one.
        b.entry(l1, 1, || waiting(0));
        assert_eq!(b.len, 4);
        let busy: HashSet<Uuid> = [l1].into();
        let (l, seq, _) = b.next(|l| !busy.contains(l)).unwrap();
        assert_eq!((l, seq), (l2, 5));
        // l1 was busy: it waits to be woken; l3 is next.
        let (l, seq, _) = b.next(|l| !busy.contains(l)).unwrap();
        assert_eq!((l, seq), (l3, 9));
        assert!(b.next(|_| true).is_none());
        b.wake(l1);
        b.wake(l1);
        let (l, seq, _) = b.next(|_| true).unwrap();
        assert_eq!((l, seq), (l1, 1));
        assert_eq!((b.len, b.link_len(l1)), (1, 1));
        assert!(b.contains(l1, 3) && !b.contains(l1, 1));
        b.entry(l3, 10, || waiting(2));
        b.forget_delivered();
        assert_eq!((b.len, b.link_len(l3)), (1, 0));
        b.wake(l1);
        assert_eq!(b.next(|_| true).map(|(l, s, _)| (l, s)), Some((l1, 3)));
        assert_eq!(b.len, 0);
    }
}
