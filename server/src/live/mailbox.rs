//! A connection's bounded queue of outgoing frames: the dispatcher and the connection's own reader
//! put frames in with [`Sender::try_send`], the writer takes them out with [`Receiver::recv`].
//!
//! It does what a bounded `tokio::sync::mpsc` channel does here, for far less memory: tokio's
//! channel allocates its shared state and a block of 32 slots up front, about 2.3 KB per
//! connection, which was a third of what an idle socket cost. This queue is one small allocation,
//! and it gives back its slots whenever it runs empty, so an idle connection's queue holds none.

use super::hub::Outgoing;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver when a frame arrives or the last sender goes.
    ready: Notify,
    capacity: usize,
}

struct State {
    items: VecDeque<Outgoing>,
    senders: usize,
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a plain queue behind, still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queue holding at most `capacity` frames.
pub fn mailbox(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        capacity,
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// Puts frames into a connection's queue; cloned by everyone who does.
pub struct Sender(Arc<Shared>);

impl Sender {
    /// Queues `item`, or gives it back when the queue is full (the connection cannot keep up) or
    /// its writer is gone.
    pub fn try_send(&self, item: Outgoing) -> Result<(), Outgoing> {
        let mut state = self.0.lock();
        if state.receiver_gone || state.items.len() >= self.0.capacity {
            return Err(item);
        }
        state.items.push_back(item);
        drop(state);
        self.0.ready.notify_one();
        Ok(())
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.0.ready.notify_one();
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Takes frames out of a connection's queue, in order.
pub struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next frame; `None` once the queue is empty and every sender is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            {
                let mut state = self.0.lock();
                if let Some(item) = state.items.pop_front() {
                    if state.items.is_empty() {
                        state.items = VecDeque::new();
                    }
                    return Some(item);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            // A frame queued between the check and here left a permit: this returns at once.
            self.0.ready.notified().await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_gone = true;
        state.items = VecDeque::new();
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> Outgoing {
        Outgoing::Close(code, "")
    }

    fn code(item: Option<Outgoing>) -> Option<u16> {
        match item {
            Some(Outgoing::Close(code, _)) => Some(code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn frames_come_out_in_the_order_they_went_in() {
        let (tx, mut rx) = mailbox(8);
        for c in [1, 2, 3] {
            tx.try_send(close(c)).unwrap();
        }
        assert_eq!(code(rx.recv().await), Some(1));
        assert_eq!(code(rx.recv().await), Some(2));
        assert_eq!(code(rx.recv().await), Some(3));
    }

    #[tokio::test]
    async fn a_full_queue_gives_the_frame_back() {
        let (tx, mut rx) = mailbox(2);
        tx.try_send(close(1)).unwrap();
        tx.try_send(close(2)).unwrap();
        assert!(matches!(tx.try_send(close(3)), Err(Outgoing::Close(3, _))));
        assert_eq!(code(rx.recv().await), Some(1));
        tx.try_send(close(4)).unwrap();
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_frame_sent_later() {
        let (tx, mut rx) = mailbox(4);
        let waiting = tokio::spawn(async move { code(rx.recv().await) });
        tokio::task::yield_now().await;
        tx.try_send(close(7)).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn the_receiver_ends_after_the_last_frame_once_every_sender_is_gone() {
        let (tx, mut rx) = mailbox(4);
        let other = tx.clone();
        tx.try_send(close(1)).unwrap();
        drop(tx);
        drop(other);
        assert_eq!(code(rx.recv().await), Some(1));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn nothing_is_queued_once_the_receiver_is_gone() {
        let (tx, rx) = mailbox(4);
        drop(rx);
        assert!(tx.try_send(close(1)).is_err());
    }
}
