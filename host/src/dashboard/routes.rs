//! The dashboard's HTTP routes: the page and its assets (embedded in the binary), the live
//! snapshot stream, a job by id, the dead list by page, and the dead list's retry and purge.
//!
//! Every route sits behind [`guard`]: Basic authentication when users are set, and for a
//! POST the CSRF token and a JSON body (which a form of another site cannot send), refused
//! outright in `--read-only`. Everything shown is someone else's text (job data, errors,
//! queue names): the page writes it as text, never as HTML, and the Content-Security-Policy
//! runs no script but the page's own even if that were ever missed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;

use sque::{Admin, DeadJobs, Inspector, JobId};

use super::auth::{Access, Verdict};
use super::snapshot::Snapshots;
use crate::sandbox::cut;

/// The most bytes of a bad id or action an error repeats.
const SHOWN: usize = 64;

/// The most dead jobs one page of the list shows.
const MAX_PAGE: usize = 200;

/// What the routes share.
pub struct App {
    pub access: Arc<Access>,
    /// Where the dashboard serves: without users, only requests that name it (or
    /// `localhost`) in `Host` are served, so a page of another site that rebinds its name to
    /// this address cannot use it.
    pub addr: std::net::SocketAddr,
    pub snapshots: Arc<Snapshots>,
    pub opts: sque::Options,
    /// Each queue's reader (and writer, unless read-only), opened on first use: one
    /// connection a queue, not one a request.
    opened: tokio::sync::Mutex<HashMap<String, (Inspector, Option<Admin>)>>,
}

impl App {
    pub fn new(
        access: Access,
        addr: std::net::SocketAddr,
        snapshots: Arc<Snapshots>,
        opts: sque::Options,
    ) -> App {
        App {
            access: Arc::new(access),
            addr,
            snapshots,
            opts,
            opened: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn open(&self, queue: &str) -> Result<(Inspector, Option<Admin>), Failure> {
        sque::validate_queue_name(queue).map_err(Failure::from)?;
        let mut opened = self.opened.lock().await;
        if let Some(found) = opened.get(queue) {
            return Ok(found.clone());
        }
        let inspector = Inspector::new(queue, self.opts.clone()).await?;
        let admin = match self.access.read_only {
            true => None,
            false => Some(Admin::new(queue, self.opts.clone()).await?),
        };
        opened.insert(queue.to_string(), (inspector.clone(), admin.clone()));
        Ok((inspector, admin))
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/api/session", get(session))
        .route("/api/events", get(events))
        .route("/api/queues/{queue}/jobs/{id}", get(job))
        .route("/api/queues/{queue}/dead", get(dead_page))
        .route("/api/queues/{queue}/dead/{action}", post(dead_action))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Authentication for every route; for a POST, also the CSRF token, a JSON body and an
/// origin of its own, and nothing at all in read-only mode. Every answer, refusals too,
/// carries the security headers.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    // The request's body is not Sync: what is checked is copied out of it.
    let (method, headers) = (request.method().clone(), request.headers().clone());
    let mut response = match admit(&app, &method, &headers).await {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Why a request is refused, or `None` when it may go on.
async fn admit(app: &App, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !app.access.authenticates() && !app.access.insecure_no_auth && !names_this(app.addr, host) {
        return Some(Failure(StatusCode::MISDIRECTED_REQUEST, "this dashboard has no sign-in and serves only requests addressed to it by IP or localhost".into()).into_response());
    }
    match app
        .access
        .check(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
        .await
    {
        Verdict::Allowed => {}
        Verdict::Unauthorized => {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        "Basic realm=\"sque\", charset=\"UTF-8\"",
                    )],
                    "sign in: this dashboard needs a user and password\n",
                )
                    .into_response(),
            )
        }
        Verdict::Busy => {
            return Some(
                Failure(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many sign-ins are being checked at once; try again in a moment".into(),
                )
                .into_response(),
            )
        }
    }
    if method != Method::POST {
        return None;
    }
    if app.access.read_only {
        return Some(
            Failure(
                StatusCode::FORBIDDEN,
                "this dashboard is read-only (--read-only): it retries and purges nothing".into(),
            )
            .into_response(),
        );
    }
    if !app
        .access
        .csrf_ok(headers.get("x-sque-csrf").map(HeaderValue::as_bytes))
    {
        return Some(
            Failure(
                StatusCode::FORBIDDEN,
                "missing or wrong x-sque-csrf header: reload the page".into(),
            )
            .into_response(),
        );
    }
    // A browser names the page a request comes from: it must be this dashboard's own.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, rest)| Some(rest) == host);
        if !own {
            return Some(
                Failure(
                    StatusCode::FORBIDDEN,
                    "a change may come only from this dashboard's own page".into(),
                )
                .into_response(),
            );
        }
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Some(
            Failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request's body as application/json".into(),
            )
            .into_response(),
        );
    }
    None
}

/// Whether a `Host` header names `addr`: its IP and port, or `localhost` on its port.
fn names_this(addr: std::net::SocketAddr, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    // "name:port", "[v6]:port", or a name alone (port 80).
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, port.parse().ok()),
        _ => (host, Some(80)),
    };
    if port != Some(addr.port()) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse() == Ok(addr.ip())
}

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("assets/index.html"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
}

/// What the page needs to know of itself: whether it may change anything, the token its
/// POSTs carry, and the version serving it.
async fn session(State(app): State<Arc<App>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "read_only": app.access.read_only,
        "csrf": app.access.csrf,
        "authenticated": app.access.authenticates(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// The snapshots, as Server-Sent Events (`snapshot`, JSON), the latest first.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.snapshots.subscribe();
    let stop = app.snapshots.stop.clone();
    // The latest first (once there is one), then each new one; ends at shutdown.
    let stream = futures_util::stream::unfold((rx, true), move |(mut rx, mut first)| {
        let stop = stop.clone();
        async move {
            loop {
                if !first {
                    tokio::select! {
                        changed = rx.changed() => changed.ok()?,
                        _ = stop.cancelled() => return None,
                    }
                }
                first = false;
                let json = rx.borrow_and_update().clone();
                if !json.is_empty() {
                    let event = Event::default().event("snapshot").data(json.as_str());
                    return Some((Ok(event), (rx, false)));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn job(
    State(app): State<Arc<App>>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} is not a job id: ids are numbers, as push prints them",
                cut(&id, SHOWN)
            ),
        ));
    }
    let (inspector, _) = app.open(&queue).await?;
    match inspector.job(&JobId::from(id.clone())).await? {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("queue {queue:?} never gave the id {id}"),
        )),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn dead_page(
    State(app): State<Arc<App>>,
    Path(queue): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Failure> {
    let (inspector, _) = app.open(&queue).await?;
    let limit = page.limit.unwrap_or(50).min(MAX_PAGE);
    Ok(Json(inspector.dead_page(page.offset, limit).await?).into_response())
}

/// Which dead jobs a retry or purge is for: `{"ids": [...]}` or `{"all": true}`.
#[derive(Deserialize)]
struct Which {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

async fn dead_action(
    State(app): State<Arc<App>>,
    Path((queue, action)): Path<(String, String)>,
    body: Result<Json<Which>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Failure> {
    let Json(which) = body.map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()))?;
    if which.all != which.ids.is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "name the dead jobs: {\"ids\": [...]} or {\"all\": true}, not both".into(),
        ));
    }
    let (_, admin) = app.open(&queue).await?;
    let admin = admin.expect("a dashboard that is not read-only opens an admin");
    let ids: Vec<JobId> = which.ids.into_iter().map(JobId::from).collect();
    let target = match which.all {
        true => DeadJobs::All,
        false => DeadJobs::Ids(&ids),
    };
    let report = match action.as_str() {
        "retry" => admin.retry_dead_jobs(target).await?,
        "purge" => admin.purge_dead_jobs(target).await?,
        _ => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "{:?} is no action on the dead list: use retry or purge",
                    cut(&action, SHOWN)
                ),
            ))
        }
    };
    tracing::info!(
        queue = %queue,
        "dashboard: {action} of {} dead job(s) done, {} refused",
        report.done,
        report.refused.len()
    );
    Ok(Json(report).into_response())
}

/// A request that failed: a status and one line, as JSON `{"error": ...}`.
pub struct Failure(StatusCode, String);

impl From<sque::Error> for Failure {
    fn from(e: sque::Error) -> Failure {
        let status = match &e {
            sque::Error::NoSuchQueue(_) => StatusCode::NOT_FOUND,
            e if e.is_bad_input() => StatusCode::BAD_REQUEST,
            sque::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Failure(status, e.to_string().replace('\n', " "))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::names_this;

    #[test]
    fn a_host_header_names_the_dashboard_by_its_ip_or_localhost_and_its_port() {
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        let v4 = at("127.0.0.1:8080");
        assert!(names_this(v4, Some("127.0.0.1:8080")));
        assert!(names_this(v4, Some("LOCALHOST:8080")));
        assert!(!names_this(v4, Some("evil.example:8080")));
        assert!(!names_this(v4, Some("127.0.0.1:8081")));
        assert!(!names_this(v4, Some("127.0.0.1")), "port 80 is meant");
        assert!(!names_this(v4, None));
        assert!(names_this(at("127.0.0.1:80"), Some("127.0.0.1")));
        let v6 = at("[::1]:8080");
        assert!(names_this(v6, Some("[::1]:8080")));
        assert!(!names_this(v6, Some("[::1]")));
        assert!(names_this(at("[::1]:80"), Some("[::1]")));
    }
}
