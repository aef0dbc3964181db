//! A container's output hub: the monitor publishes each chunk of the running container's output;
//! every attached client has its own small bounded queue, and log followers get a wake-up.
//!
//! Back-pressure, never loss: [`Hub::publish`] waits until every attached client's queue has
//! room, so a slow client slows the relay, the relay stops reading the shim, and the shim stops
//! reading the container's output (which then blocks, as under Docker). A client that goes away
//! drops its receiver, and is skipped from then on; it never holds the container up. A client
//! that stays connected but stops reading holds the container up while it runs (as under
//! Docker); once the run is over (the caller's `run_over`), a client that has taken nothing for
//! [`STALL`] is cut off (its stream ends) so that the exit can be recorded.
//!
//! Memory: with nobody attached a hub is an empty list and a counter; each attached client costs
//! at most [`QUEUE`] chunks (the shim's chunks are at most 16 KiB).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::container::Output;

/// Chunks queued per attached client before the relay waits for it.
pub(crate) const QUEUE: usize = 8;
/// How long a client may take nothing, once the run is over, before it is cut off.
pub(crate) const STALL: Duration = Duration::from_secs(2);
/// How often a waiting relay asks whether the run is over.
const TICK: Duration = Duration::from_millis(500);

pub(crate) struct Hub {
    subs: Mutex<Vec<mpsc::Sender<Output>>>,
    /// Bumped once per chunk relayed and at each exit: log followers read the file on.
    written: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            subs: Mutex::new(Vec::new()),
            written: watch::channel(0).0,
        }
    }
}

impl Hub {
    /// A queue that receives every chunk published from now on, then [`Output::Exit`].
    pub(crate) fn subscribe(&self) -> mpsc::Receiver<Output> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.subs.lock().unwrap().push(tx);
        rx
    }

    /// Changes whenever output was written to the log (or the run ended).
    pub(crate) fn written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Hands `out` to every attached client, waiting for room in each queue (see the module doc);
    /// `run_over` is asked while a client keeps the relay waiting.
    pub(crate) async fn publish(&self, out: Output, run_over: impl Fn() -> bool) {
        self.written.send_modify(|n| *n += 1);
        let subs: Vec<mpsc::Sender<Output>> = self.subs.lock().unwrap().clone();
        let mut drop_some = false;
        for tx in subs {
            let mut waited = Duration::ZERO;
            loop {
                match tokio::time::timeout(TICK, tx.reserve()).await {
                    Ok(Ok(permit)) => {
                        permit.send(out.clone());
                        break;
                    }
                    // The client went away.
                    Ok(Err(_)) => {
                        drop_some = true;
                        break;
                    }
                    Err(_) => {
                        waited += TICK;
                        if waited >= STALL && run_over() {
                            self.cut(&tx);
                            break;
                        }
                    }
                }
            }
        }
        if drop_some {
            self.subs.lock().unwrap().retain(|t| !t.is_closed());
        }
    }

    /// Ends a stalled client's stream: it gets what is queued, then the end.
    fn cut(&self, tx: &mpsc::Sender<Output>) {
        self.subs.lock().unwrap().retain(|t| !t.same_channel(tx));
    }

    /// The run ended: every attached client gets [`Output::Exit`] after what is queued for it, and
    /// is then let go (it belongs to this run).
    pub(crate) fn end_run(&self) {
        let subs = std::mem::take(&mut *self.subs.lock().unwrap());
        for tx in subs {
            if let Err(mpsc::error::TrySendError::Full(exit)) = tx.try_send(Output::Exit) {
                // Behind a full queue: deliver it when the client makes room (or goes away).
                tokio::spawn(async move {
                    let _ = tx.send(exit).await;
                });
            }
        }
        self.written.send_modify(|n| *n += 1);
    }

    /// Attached clients (for tests and `ps`-like diagnostics).
    #[cfg(test)]
    pub(crate) fn attached(&self) -> usize {
        self.subs.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(i: u32) -> Output {
        Output::Stdout(Bytes::from(i.to_be_bytes().to_vec()))
    }

    fn num(o: Output) -> u32 {
        match o {
            Output::Stdout(b) => u32::from_be_bytes(b[..].try_into().unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_every_chunk_in_order() {
        let hub = std::sync::Arc::new(Hub::default());
        let mut rx = hub.subscribe();
        let h = hub.clone();
        let relay = tokio::spawn(async move {
            for i in 0..1000 {
                h.publish(chunk(i), || false).await;
            }
            h.end_run();
        });
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Some(Output::Exit) => break,
                Some(o) => got.push(num(o)),
                None => panic!("stream ended without Exit"),
            }
            if got.len() % 100 == 0 {
                // A pause: the relay must wait, not drop.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        relay.await.unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_client_that_went_away_does_not_block_the_relay() {
        let hub = Hub::default();
        let rx = hub.subscribe();
        let mut live = hub.subscribe();
        drop(rx);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(o) = live.recv().await {
                if matches!(o, Output::Exit) {
                    break;
                }
                n += 1;
            }
            n
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            for i in 0..100 {
                hub.publish(chunk(i), || false).await;
            }
        })
        .await
        .expect("relay blocked by a departed client");
        assert_eq!(hub.attached(), 1);
        hub.end_run();
        assert_eq!(reader.await.unwrap(), 100);
        assert_eq!(hub.attached(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_is_cut_only_once_the_run_is_over() {
        let hub = Hub::default();
        let mut rx = hub.subscribe();
        for i in 0..QUEUE as u32 {
            hub.publish(chunk(i), || false).await;
        }
        // Full queue, run still going: the relay waits (here: past many stall periods).
        let waited = tokio::time::timeout(STALL * 10, hub.publish(chunk(99), || false)).await;
        assert!(waited.is_err(), "the relay must wait for a live run");
        // Run over: the client is cut after STALL, keeping what was queued.
        hub.publish(chunk(100), || true).await;
        assert_eq!(hub.attached(), 0);
        let mut got = Vec::new();
        while let Some(o) = rx.recv().await {
            got.push(num(o));
        }
        assert_eq!(got, (0..QUEUE as u32).collect::<Vec<_>>());
    }

    #[test]
    fn an_idle_hub_holds_no_buffer() {
        // No queue exists until someone attaches.
        assert!(std::mem::size_of::<Hub>() < 128);
        assert_eq!(Hub::default().attached(), 0);
    }
}
