//! A connection's bounded queue of outgoing frames: the dispatcher and the connection's own reader
//! put frames in with [`Sender::try_send`], the writer takes them out with [`Receiver::recv`].
//!
//! It is bounded twice: in frames, and in the bytes they hold ([`Outgoing::weight`]), so that a
//! connection that does not read cannot make the server hold large frames for it; an empty queue
//! still takes one frame of any size.
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
    capacity_bytes: usize,
}

struct State {
    items: VecDeque<Outgoing>,
    /// The weight of `items`.
    bytes: usize,
    senders: usize,
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a plain queue behind, still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queue holding at most `capacity` frames and `capacity_bytes` bytes of them.
pub fn mailbox(capacity: usize, capacity_bytes: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            senders: 1,
            receiver_gone: false,
        }),
        ready: Notify::new(),
        capacity,
        capacity_bytes,
    });
    (Sender(shared.clone()), Receiver(shared))
}

/// Puts frames into a connection's queue; cloned by everyone who does.
pub struct Sender(Arc<Shared>);

impl Sender {
    /// Queues `item`, or gives it back when the queue is full (the connection cannot keep up) or
    /// its writer is gone.
    pub fn try_send(&self, item: Outgoing) -> Result<(), Outgoing> {
        let weight = item.weight();
        let mut state = self.0.lock();
        let full = state.items.len() >= self.0.capacity
            || (!state.items.is_empty() && state.bytes + weight > self.0.capacity_bytes);
        if state.receiver_gone || full {
            return Err(item);
        }
        state.bytes += weight;
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
                    state.bytes -= item.weight();
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
        state.bytes = 0;
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
    use futures_util::FutureExt as _;

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
        let (tx, mut rx) = mailbox(8, 1 << 20);
        for c in [1, 2, 3] {
            tx.try_send(close(c)).unwrap();
        }
        assert_eq!(code(rx.recv().await), Some(1));
        assert_eq!(code(rx.recv().await), Some(2));
        assert_eq!(code(rx.recv().await), Some(3));
    }

    #[tokio::test]
    async fn a_full_queue_gives_the_frame_back() {
        let (tx, mut rx) = mailbox(2, 1 << 20);
        tx.try_send(close(1)).unwrap();
        tx.try_send(close(2)).unwrap();
        assert!(matches!(tx.try_send(close(3)), Err(Outgoing::Close(3, _))));
        assert_eq!(code(rx.recv().await), Some(1));
        tx.try_send(close(4)).unwrap();
    }

    fn frame(bytes: usize) -> Outgoing {
        Outgoing::Frame(super::super::hub::Frame {
            kind: "ERROR",
            json: "x".repeat(bytes).into(),
        })
    }

    #[tokio::test]
    async fn a_queue_is_full_by_its_bytes_too_but_an_empty_one_takes_any_frame() {
        let (tx, mut rx) = mailbox(100, 1000);
        tx.try_send(frame(600)).unwrap();
        assert!(tx.try_send(frame(600)).is_err(), "1200 bytes is over 1000");
        tx.try_send(frame(400)).unwrap();
        assert!(tx.try_send(close(1)).is_ok(), "a close weighs nothing");
        assert!(rx.recv().await.is_some());
        tx.try_send(frame(500)).unwrap();
        while rx.recv().now_or_never().flatten().is_some() {}
        tx.try_send(frame(5000))
            .expect("an empty queue takes a frame of any size");
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_frame_sent_later() {
        let (tx, mut rx) = mailbox(4, 1 << 20);
        let waiting = tokio::spawn(async move { code(rx.recv().await) });
        tokio::task::yield_now().await;
        tx.try_send(close(7)).unwrap();
        assert_eq!(waiting.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn the_receiver_ends_after_the_last_frame_once_every_sender_is_gone() {
        let (tx, mut rx) = mailbox(4, 1 << 20);
        let other = tx.clone();
        tx.try_send(close(1)).unwrap();
        drop(tx);
        drop(other);
        assert_eq!(code(rx.recv().await), Some(1));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn nothing_is_queued_once_the_receiver_is_gone() {
        let (tx, rx) = mailbox(4, 1 << 20);
        drop(rx);
        assert!(tx.try_send(close(1)).is_err());
    }
}
