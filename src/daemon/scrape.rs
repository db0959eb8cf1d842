//! The metrics endpoint on `daemon.metrics_listen`: `GET /metrics`, rendered at
//! each scrape from the counters in [`Metrics`] and the current status, and
//! `GET /`, the certificates' timeline as a page ([`crate::timeline::html`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::View;
use crate::metrics::Metrics;

/// Serves `GET /metrics` and `GET /` on `addr` until `cancel`.
///
/// # Errors
///
/// When `addr` cannot be bound.
pub(super) async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    view: watch::Receiver<View>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, say: pause instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (metrics, view) = (metrics.clone(), view.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (metrics, view) = (metrics.clone(), view.borrow().clone());
                        async move { Ok::<_, Infallible>(respond(&req, &metrics, &view).await) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

async fn respond(
    req: &Request<hyper::body::Incoming>,
    metrics: &Metrics,
    view: &View,
) -> Response<Full<Bytes>> {
    let (body, content_type) = match req.uri().path() {
        "/metrics" => (
            {
                if let Some(cluster) = &view.cluster {
                    metrics.cluster(cluster.connected(), cluster.leases_held());
                }
                metrics.render(&view.statuses(&[]).await)
            },
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/" => {
            let entries = crate::timeline::entries(&view.statuses(&[]).await);
            let now = time::OffsetDateTime::now_utc();
            (
                crate::timeline::html(now, &entries),
                "text/html; charset=utf-8",
            )
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"see / or /metrics\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
