//! The `/metrics` endpoint (`--metrics-addr`): the Prometheus text format (0.0.4) over HTTP,
//! until the host stops. Anything else is a 404.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Binds `addr` (refusing to start if it cannot) and serves `/metrics` until `stop`.
/// Returns the address bound (port 0 picks a free one) and the serving task.
pub async fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot serve metrics on {addr}; pass a free address to --metrics-addr (SQUE_METRICS_ADDR)")
    })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!("the metrics endpoint stopped: {e}");
        }
    });
    Ok((bound, task))
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
