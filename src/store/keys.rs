//! How records are keyed on disk. These layouts are the data dir's format:
//! a store written before must still open and read the same.
//!
//! - outbox, held, dead: `QueueKey`, `dest \0 seq` (seq big-endian, so a
//!   destination's messages sort in queue order)
//! - applied: `event link dest` (two raw UUIDs, then the name)
//! - tails, late: `dest \0 link`; waiting: `dest \0 link seq`
//! - link_idx, created, seen, tickets: `a \0 b`
//! - links: the link's UUID; cursors: the endpoint's name

use super::records::Envelope;
use uuid::Uuid;

/// Position of a message in a destination queue: `dest \0 seq`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub dest: String,
    pub seq: u64,
}

impl QueueKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = dest_prefix(&self.dest);
        k.extend_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<QueueKey> {
        let split = k.iter().position(|b| *b == 0)?;
        let seq: [u8; 8] = k.get(split + 1..)?.try_into().ok()?;
        Some(QueueKey {
            dest: String::from_utf8(k[..split].to_vec()).ok()?,
            seq: u64::from_be_bytes(seq),
        })
    }

    /// The id an operator types: `vendor:42`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.dest, self.seq)
    }

    pub fn parse_id(s: &str) -> Option<QueueKey> {
        let (dest, seq) = s.rsplit_once(':')?;
        Some(QueueKey {
            dest: dest.into(),
            seq: seq.parse().ok()?,
        })
    }
}

/// The start of every `QueueKey` of `dest`.
pub(super) fn dest_prefix(dest: &str) -> Vec<u8> {
    let mut prefix = dest.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

pub(super) fn applied_key(event: Uuid, link: Uuid, dest: &str) -> Vec<u8> {
    let mut k = event.as_bytes().to_vec();
    k.extend_from_slice(link.as_bytes());
    k.extend_from_slice(dest.as_bytes());
    k
}

/// A `late` record's seq.
pub(super) fn late_seq(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

pub(super) fn tail_key(dest: &str, link: Uuid) -> Vec<u8> {
    let mut k = dest_prefix(dest);
    k.extend_from_slice(link.as_bytes());
    k
}

pub(super) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// The applied-set key of `env`'s (event, link, destination).
pub(super) fn applied_key_of(env: &Envelope) -> Vec<u8> {
    applied_key(env.event.id, env.link_id, &env.dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_key_roundtrips_and_orders() {
        let a = QueueKey {
            dest: "v".into(),
            seq: 2,
        };
        let b = QueueKey {
            dest: "v".into(),
            seq: 256,
        };
        assert!(a.encode() < b.encode());
        assert_eq!(QueueKey::decode(&b.encode()), Some(b.clone()));
        assert_eq!(QueueKey::parse_id(&b.id()), Some(b));
    }
}
