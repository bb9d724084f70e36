//! The ways a message becomes a dead letter at the relay, each with the
//! reason the operator reads in `deskbridge dead`.

use super::dispatcher::Dispatcher;
use super::done::Done;
use super::gap::Gap;
use super::status::with_status;
use crate::store::{DeadLetter, Envelope, QueueKey, StoreError};
use chrono::Utc;
use tracing::warn;

impl Dispatcher {
    /// A broker message for a link that is not in this deskbridge's store
    /// goes to the destination's dead-letter queue at the broker, where
    /// whoever owns it can take it back (its link and seq are another
    /// store's: a dead letter here could be neither replayed nor told from
    /// ours). Not a stop: the daemon's own links go on.
    pub(super) fn not_ours(&self, key: &QueueKey, env: &Envelope) {
        warn!(
            dest = %self.dest, link = %env.link_id, event = %env.event.id, message = %key.id(),
            "a message arrived for a link this deskbridge does not know, likely from another deskbridge on the same bus.prefix (give each its own bus.prefix), or its data_dir was replaced; moved to the broker's dead-letter queue of {}",
            self.dest
        );
        with_status(&self.board, &self.dest, |s| s.foreign += 1);
    }

    /// A message that waited `order_wait` for its link's earlier one, which
    /// the broker never delivered, becomes a dead letter that says so; its
    /// link waits behind it for the operator.
    pub(super) async fn gave_up_waiting(
        &self,
        g: Gap,
    ) -> Result<(QueueKey, DeadLetter), StoreError> {
        let error = format!(
            "the broker delivered this before {}, the message its link sent before it, which has not arrived in {} s and is not in the broker's queue either (did the broker lose it?). \
             `deskbridge replay` applies this one without it (if it arrives meanwhile, it goes first); `deskbridge discard` drops this one",
            self.key(g.missing).id(),
            self.order_wait.as_secs()
        );
        warn!(dest = %self.dest, link = %g.env.link_id, event = %g.env.event.id, %error, "dead letter");
        let dl = DeadLetter {
            envelope: g.env,
            error,
            attempts: 0,
            at: Utc::now(),
            waited_for: Some(g.missing),
        };
        self.store.kill(&g.key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok((g.key, dl))
    }

    /// A message that arrived after its link went on without it becomes a
    /// dead letter: the operator decides whether it still applies.
    pub(super) async fn came_late(
        &self,
        key: &QueueKey,
        env: Envelope,
        by: &QueueKey,
    ) -> Result<(QueueKey, DeadLetter), StoreError> {
        let error = format!(
            "arrived from the broker after its link went on without it (the operator replayed or discarded {}, which waited for an earlier message). \
             `deskbridge replay` applies it now: after its link's messages already applied, before those still waiting; `deskbridge discard` drops it",
            by.id()
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        self.dead_letter(key, env, error, 0).await
    }

    /// Moves a message to the dead letters, durably, and counts it.
    pub(super) async fn dead_letter(
        &self,
        key: &QueueKey,
        envelope: Envelope,
        error: String,
        attempts: u32,
    ) -> Result<(QueueKey, DeadLetter), StoreError> {
        let dl = DeadLetter {
            envelope,
            error,
            attempts,
            at: Utc::now(),
            waited_for: None,
        };
        self.store.kill(key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok((key.clone(), dl))
    }

    /// A message whose link is not in the store, as a dead letter.
    pub(super) async fn unknown_link(
        &self,
        key: &QueueKey,
        env: &Envelope,
        attempts: u32,
    ) -> Result<Done, StoreError> {
        let error = format!(
            "link {} is not in this deskbridge's store: the message came from another deskbridge (give each its own bus.prefix), or the data_dir was replaced. `deskbridge discard` drops it",
            env.link_id
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        let dead = self.dead_letter(key, env.clone(), error, attempts).await?;
        Ok(Done::Dead(Box::new(dead)))
    }

    /// Makes the message of a delivery task that panicked a dead letter.
    pub(super) async fn bury_panicked(
        &self,
        seq: u64,
        env: &Envelope,
        e: tokio::task::JoinError,
    ) -> Result<Done, StoreError> {
        let why = match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into()),
            Err(e) => e.to_string(),
        };
        let error = format!(
            "deskbridge failed while delivering this (a bug; please report it with the log): {why}"
        );
        warn!(dest = %self.dest, link = %env.link_id, event = %env.event.id, %error, "dead letter");
        let key = self.key(seq);
        let dl = DeadLetter {
            envelope: env.clone(),
            error,
            attempts: 1,
            at: Utc::now(),
            waited_for: None,
        };
        self.store.kill(&key, &dl)?;
        self.store.flush().await?;
        with_status(&self.board, &self.dest, |s| s.dead_lettered += 1);
        Ok(Done::Dead(Box::new((key, dl))))
    }
}
