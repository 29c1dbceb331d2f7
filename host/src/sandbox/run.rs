//! One job in the sandbox: a fresh store and instance, the `handle` call within the job's
//! time and memory, and what became of it, told apart for the job's last error.

use wasmtime::{Store, Trap};

use crate::sandbox::engine::Sandbox;
use crate::sandbox::handler::Handler;
use crate::sandbox::sque::handler::types::{Error as GuestError, Job as GuestJob};
use crate::sandbox::state::State;

/// What the guest is given.
#[derive(Clone, Debug)]
pub struct JobInput {
    pub id: String,
    pub queue: String,
    pub attempt: u32,
    /// The job's data as JSON text.
    pub data: String,
}

/// What became of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, with the JSON result the handler returned, if any.
    Completed(Option<String>),
    /// Try again after a backoff (dead once out of attempts): the handler asked for it, or
    /// it trapped, panicked, ran out of time or of memory.
    Retry(String),
    /// Straight to the dead list: the handler said no retry can help.
    Fail(String),
}

impl Sandbox {
    /// Runs one job in a fresh instance of `handler`.
    pub async fn run(&self, handler: &Handler, job: JobInput) -> Outcome {
        let mut store = Store::new(
            &self.engine,
            State::new(&self.limits, &self.grants, &job.queue, &job.id),
        );
        store.limiter(|state| &mut state.limiter);
        // Yield to the runtime at every epoch tick: the timeout below can then fire even
        // while the guest computes without end.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let input = GuestJob {
            id: job.id,
            queue: job.queue,
            attempt: job.attempt,
            data: job.data,
        };
        let result = {
            let call = async {
                let instance = handler.pre.instantiate_async(&mut store).await?;
                instance.call_handle(&mut store, &input).await
            };
            tokio::time::timeout(self.limits.timeout, call).await
        };
        let state = store.data();
        state.log.finish();
        match result {
            Err(_) => Outcome::Retry(format!(
                "timed out after {:?} (the per-job limit)",
                self.limits.timeout
            )),
            Ok(Ok(Ok(None))) => Outcome::Completed(None),
            Ok(Ok(Ok(Some(json)))) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(&json).is_ok() {
                    Outcome::Completed(Some(json))
                } else {
                    Outcome::Fail("the handler returned a result that is not JSON".into())
                }
            }
            Ok(Ok(Err(GuestError::Retry(m)))) => {
                Outcome::Retry(format!("handler asked to retry: {m}"))
            }
            Ok(Ok(Err(GuestError::Fail(m)))) => Outcome::Fail(format!("handler failed: {m}")),
            Ok(Err(e)) => {
                if let Some(asked) = state.limiter.hit {
                    Outcome::Retry(format!(
                        "out of memory: the guest asked for {:.1} MiB of linear memory, the limit is {:.1} MiB",
                        asked as f64 / (1 << 20) as f64,
                        self.limits.max_memory as f64 / (1 << 20) as f64
                    ))
                } else if let Some(panic) = &state.panic {
                    Outcome::Retry(format!("guest panicked: {panic}"))
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    // Rust guests keep their stack in linear memory: running off its end is
                    // an out-of-bounds access rather than wasm's own stack exhaustion.
                    let hint = if *trap == Trap::MemoryOutOfBounds {
                        " (a guest stack overflow, e.g. deep recursion, ends this way too)"
                    } else {
                        ""
                    };
                    Outcome::Retry(format!("guest trapped: {trap}{hint}"))
                } else {
                    Outcome::Retry(format!("guest failed: {e}"))
                }
            }
        }
    }
}
