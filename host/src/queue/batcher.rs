//! Group commit for a client's announces and completions: calls made while one is on its
//! way to Redis wait and go together in the next script call. At light load each call goes
//! alone at once; under load, fifty slots cost Redis one call instead of fifty. Order is
//! kept: entries go to Redis in the order they were submitted.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::queue::duty::{Duty, Shutdown};
use crate::queue::error::{Error, Result};

/// The most entries sent in one script call.
const MAX_BATCH: usize = 256;

/// The submitting side of a batcher: items of type `I`, each answered with an `O`.
pub(crate) struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<(I, oneshot::Sender<Result<O>>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the duty that sends batches with `send`, which answers one `O` per item.
    pub fn start<F, Fut>(name: &'static str, send: F) -> (Batcher<I, O>, Duty)
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let duty = Duty::start(name, move |shutdown| run(rx, send, shutdown));
        (Batcher { tx }, duty)
    }

    /// Submits one item and waits for its answer.
    pub async fn submit(&self, item: I) -> Result<O> {
        let (done, answer) = oneshot::channel();
        self.tx.send((item, done)).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

async fn run<I, O, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<(I, oneshot::Sender<Result<O>>)>,
    send: F,
    mut shutdown: Shutdown,
) where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<O>>>,
{
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            first = rx.recv() => match first { Some(f) => f, None => return },
        };
        let mut waiting = vec![first.1];
        let mut items = vec![first.0];
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, done)) => {
                    items.push(item);
                    waiting.push(done);
                }
                Err(_) => break,
            }
        }
        match send(items).await {
            Ok(answers) => {
                for (done, answer) in waiting.into_iter().zip(answers) {
                    let _ = done.send(Ok(answer));
                }
            }
            Err(e) => {
                let e = std::sync::Arc::new(e);
                for done in waiting {
                    let _ = done.send(Err(Error::Batch(e.clone())));
                }
            }
        }
    }
}
