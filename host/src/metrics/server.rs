//! The `/metrics` endpoint (`--metrics-addr`): the Prometheus text format (0.0.4) over HTTP.
//! Anything else is a 404.
//!
//! Its life: [`bind`] before the host connects to Redis (a taken address is refused before
//! anything is written), [`MetricsServer::serve`] once the metrics exist, and
//! [`MetricsServer::shutdown`] last, after the slots have drained, so that what they did while
//! stopping (jobs released, jobs failed at the grace period) can still be scraped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How long connections still open at shutdown may take to finish: a bound, so that no
/// client of the endpoint, however slow, can hold the host's exit.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Binds `addr` (port 0 picks a free one), or says why it cannot.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot serve metrics on {addr}; pass a free address to --metrics-addr (SQUE_METRICS_ADDR)")
    })
}

/// The endpoint, serving.
pub struct MetricsServer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Serves `/metrics` on `listener` until [`MetricsServer::shutdown`].
    pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> MetricsServer {
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(metrics);
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stopping.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("the metrics endpoint stopped: {e}");
            }
        });
        MetricsServer { stop, task }
    }

    /// Stops accepting, lets open scrapes finish within [`CLOSE_WITHIN`], then drops the rest.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(CLOSE_WITHIN, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let text = metrics.scrape().await;
    (
        [(
            CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
}
