//! Group commit for a client's requests and completions: calls made while one is on its way
//! to Redis wait and go together in the next script call. At light load each call goes
//! alone at once; under load, fifty slots cost Redis one call instead of fifty. Order is
//! kept: entries go to Redis in the order they were submitted.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// The most entries sent in one script call.
const MAX_BATCH: usize = 256;

type Entry<I, O> = (I, oneshot::Sender<Result<O>>);

/// The submitting side: items of type `I`, each answered with an `O`.
pub(crate) struct Exchanger<I, O> {
    tx: mpsc::UnboundedSender<Entry<I, O>>,
}

/// The sending side, run as a task by [`run`].
pub(crate) struct Batches<I, O>(mpsc::UnboundedReceiver<Entry<I, O>>);

pub(crate) fn channel<I, O>() -> (Exchanger<I, O>, Batches<I, O>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Exchanger { tx }, Batches(rx))
}

impl<I, O> Exchanger<I, O> {
    /// Submits one item and waits for its answer.
    pub async fn submit(&self, item: I) -> Result<O> {
        let (done, answer) = oneshot::channel();
        self.tx.send((item, done)).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Submits one item whose answer nobody waits for; once the exchanger has stopped, it is
    /// dropped.
    pub fn send_only(&self, item: I) {
        let (done, _) = oneshot::channel();
        let _ = self.tx.send((item, done));
    }
}

/// Sends batches with `send`, which answers each item in order, until `stop` is cancelled
/// and nothing is left to send: items submitted before the stop (or while the rest is sent)
/// go first. A client stops its exchanger only after closing its registry, so no new
/// request comes meanwhile; with Redis away, each batch left waits out its own failure.
pub(crate) async fn run<I, O, F, Fut>(mut batches: Batches<I, O>, send: F, stop: CancellationToken)
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Vec<Result<O>>>,
{
    // Made once: a wait made anew at each turn registered and unregistered itself (locks)
    // at every batch. Items already submitted go first; the wait is polled only when none is.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let first = tokio::select! {
            biased;
            first = batches.0.recv() => match first { Some(f) => f, None => return },
            _ = &mut stopped => return,
        };
        let mut waiting = vec![first.1];
        let mut items = vec![first.0];
        while items.len() < MAX_BATCH {
            match batches.0.try_recv() {
                Ok((item, done)) => {
                    items.push(item);
                    waiting.push(done);
                }
                Err(_) => break,
            }
        }
        for (done, answer) in waiting.into_iter().zip(send(items).await) {
            let _ = done.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn items_submitted_together_go_in_one_batch_in_order_each_with_its_answer() {
        let (exchanger, batches) = channel::<u32, u32>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            batches,
            move |items: Vec<u32>| {
                log.lock().unwrap().push(items.clone());
                async move {
                    items
                        .iter()
                        .map(|i| match i {
                            99 => Err(Error::InvalidInput("no 99".into())),
                            i => Ok(i * 10),
                        })
                        .collect::<Vec<_>>()
                }
            },
            stop.clone(),
        ));
        let (a, b, c) = tokio::join!(
            exchanger.submit(1),
            exchanger.submit(2),
            exchanger.submit(3)
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (10, 20, 30));
        let err = exchanger.submit(99).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(_)),
            "the real variant: {err}"
        );
        assert_eq!(seen.lock().unwrap()[0], vec![1, 2, 3]);
        stop.cancel();
        task.await.unwrap();
        assert!(matches!(exchanger.submit(1).await, Err(Error::Closed)));
    }
}
