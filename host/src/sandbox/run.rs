//! One job in the sandbox: a fresh store and instance (or a kept one, `reuse.rs`), the `handle` call within the job's
//! time, memory and resources, and what became of it, with a reason that says what happened
//! (`outcome.rs` has the table). The backtrace of a failure goes to the debug log, never into
//! the job's error.

use std::sync::Arc;

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};

use crate::sandbox::engine::Sandbox;
use crate::sandbox::handler::Handler;
use crate::sandbox::outcome::{cut, with_stderr, Ending, Outcome};
use crate::sandbox::reuse::Warm;
use crate::sandbox::state::State;
use crate::sandbox::world::current::sque::handler::types::{Error as GuestError, Job as GuestJob};

/// What the guest is given.
#[derive(Clone, Debug)]
pub struct JobInput {
    pub id: String,
    pub queue: String,
    pub attempt: u32,
    /// The job's data as JSON text.
    pub data: String,
    /// Where its progress reports go besides its log.
    pub progress: Option<crate::sandbox::progress::JobProgress>,
}

impl Sandbox {
    /// Runs one job in a fresh instance of `handler`.
    pub async fn run(&self, handler: &Arc<Handler>, job: JobInput) -> Outcome {
        self.run_in(handler, job, &mut None).await
    }

    /// Runs one job in `warm`'s instance if it is one of `handler`'s and fit for another job,
    /// else in a fresh one; with `--reuse N` leaves in `warm` the instance of a job that
    /// completed, until it has served N (`reuse.rs`).
    pub async fn run_in(
        &self,
        handler: &Arc<Handler>,
        job: JobInput,
        warm: &mut Option<Warm>,
    ) -> Outcome {
        // Taken first: an unfit instance is dropped, and its pool slot free, before a fresh
        // one is made.
        let kept = warm.take().filter(|w| w.fits(handler));
        let (mut store, instance, served) = match kept {
            Some(Warm {
                mut store,
                instance,
                served,
                ..
            }) => {
                store.data_mut().begin_job(
                    &job.queue,
                    &job.id,
                    self.max_error_bytes(),
                    job.progress.clone(),
                );
                (store, Some(instance), served)
            }
            None => (self.new_store(&job), None, 0),
        };
        // Yield to the runtime at every epoch tick: the timeout below can then fire even
        // while the guest computes without end.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let (queue, id) = (job.queue.clone(), job.id.clone());
        let input = GuestJob {
            id: job.id,
            queue: job.queue,
            attempt: job.attempt,
            data: job.data,
        };
        let result = {
            let call = async {
                let instance = match instance {
                    Some(instance) => instance,
                    None => match self.instantiation.get() {
                        None => handler.pre.instantiate_async(&mut store).await?,
                        Some(histogram) => {
                            let started = std::time::Instant::now();
                            let instance = handler.pre.instantiate_async(&mut store).await?;
                            histogram.observe(started.elapsed().as_secs_f64());
                            instance
                        }
                    },
                };
                let returned = instance.call_handle(&mut store, &input).await?;
                wasmtime::Result::Ok((instance, returned))
            };
            tokio::time::timeout(self.limits.timeout, call).await
        };
        store.data_mut().finish_job();
        let state = store.data();
        let limit = self.max_error_bytes();
        let failed = |ending: Ending, message: String| {
            Outcome::Failed(ending, cut(&message, limit).into_owned())
        };
        let (instance, outcome) = match result {
            Err(_) => (
                None,
                failed(
                    Ending::Timeout,
                    format!(
                        "timed out after {:?} (the per-job limit, --timeout)",
                        self.limits.timeout
                    ),
                ),
            ),
            Ok(Ok((instance, returned))) => {
                let outcome = match returned {
                    Ok(None) => Outcome::Completed(None, Vec::new()),
                    Ok(Some(json)) => self.check_result(json),
                    Err(GuestError::Retry(m)) => {
                        failed(Ending::Retry, format!("handler asked to retry: {m}"))
                    }
                    Err(GuestError::Fail(m)) => {
                        failed(Ending::Fail, format!("handler failed: {m}"))
                    }
                };
                (Some(instance), outcome)
            }
            Ok(Err(e)) => {
                tracing::debug!(%queue, job = %id, "the guest failed: {e:?}");
                let (ending, message) = self.describe_failure(state, &e);
                // A runtime that dies of an uncaught exception says why on stderr, then traps
                // or exits: that is the reason worth keeping.
                let outcome = match state.log.stderr_tail() {
                    Some(tail) if matches!(ending, Ending::Trap | Ending::Exit) => {
                        Outcome::Failed(ending, with_stderr(&message, &tail, limit))
                    }
                    _ => failed(ending, message),
                };
                (None, outcome)
            }
        };
        let served = served + 1;
        // A completed job's follow-ups go with its outcome; anyone else's are dropped here.
        let follow_ups = store.data_mut().follow_ups.take();
        let outcome = match outcome {
            Outcome::Completed(result, _) => Outcome::Completed(result, follow_ups),
            other => other,
        };
        if let (Some(instance), Outcome::Completed(..)) = (instance, &outcome) {
            if served < self.limits.reuse {
                *warm = Some(Warm {
                    handler: handler.clone(),
                    store,
                    instance,
                    served,
                });
            }
        }
        outcome
    }

    /// A store for one job (or, with `--reuse`, for the jobs of one instance).
    fn new_store(&self, job: &JobInput) -> Store<State> {
        let mut store = Store::new(
            &self.engine,
            State::new(
                &self.limits,
                self.max_error_bytes(),
                &self.grants,
                &job.queue,
                &job.id,
                job.progress.clone(),
            ),
        );
        store.limiter(|state| &mut state.limiter);
        store
    }

    /// A result is kept only if it is JSON, nested under 128 levels, within the limit.
    fn check_result(&self, json: String) -> Outcome {
        let limit = self.max_result_bytes();
        if json.len() > limit {
            return Outcome::Failed(
                Ending::ResultTooLarge,
                format!(
                    "the handler's result is {} bytes, over the limit of {limit} (--max-result-bytes, the queue's max_result_bytes): keep large results elsewhere and return a reference",
                    json.len()
                ),
            );
        }
        // Parsed into a value, not skipped: serde_json skips nested data without counting its
        // depth, and no reader could parse what a 100,000-deep result gave it.
        match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(_) => Outcome::Completed(Some(json), Vec::new()),
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => Outcome::Failed(
                Ending::BadResult,
                "the handler's result is nested 128 levels deep or more; the most allowed is 127"
                    .into(),
            ),
            Err(e) => Outcome::Failed(
                Ending::BadResult,
                format!("the handler's result is not valid JSON: {e}"),
            ),
        }
    }

    /// Tells apart the ways a call can fail, most telling first.
    fn describe_failure(&self, state: &State, e: &wasmtime::Error) -> (Ending, String) {
        let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
        if let Some(asked) = state.limiter.hit {
            return (
                Ending::OutOfMemory,
                format!(
                    "out of memory: the guest asked for {:.1} MiB of linear memory, the limit is {:.1} MiB (--max-memory)",
                    mib(asked),
                    mib(self.limits.max_memory)
                ),
            );
        }
        if let Some(what) = &state.resource_limit_hit {
            return (Ending::ResourceLimit, what.clone());
        }
        if let Some(ResourceTableError::Full) = e.downcast_ref::<ResourceTableError>() {
            return (
                Ending::ResourceLimit,
                format!(
                    "the guest held more than {} host resources at once (handles of HTTP fields, requests, pollables, streams; --max-resources)",
                    self.limits.max_resources
                ),
            );
        }
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return (
                Ending::Exit,
                format!(
                    "the guest exited with code {} (a handler returns its outcome; it does not exit)",
                    exit.0
                ),
            );
        }
        if let Some(panic) = &state.panic {
            return (Ending::Panic, format!("guest panicked: {panic}"));
        }
        if let Some(trap) = e.downcast_ref::<Trap>() {
            // Rust guests keep their stack in linear memory: running off its end is an
            // out-of-bounds access rather than wasm's own stack exhaustion.
            let hint = if *trap == Trap::MemoryOutOfBounds {
                " (a guest stack overflow, e.g. deep recursion, ends this way too)"
            } else {
                ""
            };
            return (Ending::Trap, format!("guest trapped: {trap}{hint}"));
        }
        let cause = e.root_cause().to_string();
        if cause.to_ascii_lowercase().contains("utf-8") {
            return (
                Ending::Trap,
                format!("the guest passed text that is not valid UTF-8 to the host ({cause})"),
            );
        }
        (Ending::HostError, format!("a host call failed: {cause}"))
    }
}
