//! Outgoing HTTP (`wasi:http`), allowed only to the hosts and ports granted with
//! `--allow-http`, as Spin's `allowed_outbound_hosts` does. A denied request fails inside
//! the guest with `HTTP-request-denied` and is logged on the host. `wasi:http` follows no
//! redirect itself: a guest that follows one makes a new request, checked here again.

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::sandbox::limits::{Grants, HTTP_BODY_CHUNK_BYTES};
use crate::sandbox::output::{Denied, JobLog};

pub(crate) struct AllowList {
    pub grants: Arc<Grants>,
    /// Where denials are told (once per job, then counted).
    pub log: JobLog,
}

type Sent = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for AllowList {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let default_port = if request.uri().scheme_str() == Some("https") {
            443
        } else {
            80
        };
        if !self.grants.allows_http(&authority, default_port) {
            self.log.denied(Denied::Http, &authority);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let default: &mut dyn WasiHttpHooks = Default::default();
        default.send_request(request, options, fut)
    }

    /// A body buffers one write besides the one in hand, of at most
    /// [`HTTP_BODY_CHUNK_BYTES`]: with the count of bodies (`guards.rs`), what a guest can
    /// keep in the host's memory this way is bounded.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        HTTP_BODY_CHUNK_BYTES
    }
}
