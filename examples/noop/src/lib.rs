//! The smallest handler: completes every job at once. Used by the benchmarks to measure
//! everything but the handler's own work.

use sque_guest::{handler, Error, Job};

#[handler]
fn noop(_job: Job) -> Result<(), Error> {
    Ok(())
}
