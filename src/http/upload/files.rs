//! The HTTP side of file upload (XEP-0363): `PUT /upload/<id>/<name>` fills a slot (with its
//! token, at most the announced size, streamed to disk), `GET` serves the file, and a task
//! purges expired files. Served files cannot run as a page of this site: the type is the
//! declared one only for types browsers display safely, everything else is an attachment,
//! with `nosniff` and a sandboxing Content-Security-Policy.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

use super::Uploads;
use crate::storage::Upload;

/// How long a slot may wait for its PUT.
pub const SLOT_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Read size when serving a file.
const CHUNK: usize = 64 * 1024;

fn cors(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, PUT, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
}

fn status(code: StatusCode, text: &'static str) -> Response {
    let mut r = (code, text).into_response();
    cors(&mut r);
    r
}

/// `OPTIONS`: the CORS preflight of a browser client's PUT.
pub async fn preflight() -> Response {
    status(StatusCode::OK, "")
}

/// The upload `id` if `name` is its file name.
async fn find(u: &Uploads, id: &str, name: &str) -> Result<Upload, Response> {
    match u.storage.uploads.get(id).await {
        Ok(Some(up)) if up.filename == name => Ok(up),
        Ok(_) => Err(status(StatusCode::NOT_FOUND, "no such file\n")),
        Err(e) => {
            tracing::error!("upload lookup: {e}");
            Err(status(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable\n",
            ))
        }
    }
}

/// `PUT /upload/<id>/<name>`.
pub async fn put(
    State(u): State<Arc<Uploads>>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = format!("Bearer {}", u.token(&id));
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(token.as_bytes())) {
        return status(StatusCode::FORBIDDEN, "this slot's token is required\n");
    }
    let up = match find(&u, &id, &name).await {
        Ok(up) => up,
        Err(r) => return r,
    };
    if up.done {
        return status(StatusCode::CONFLICT, "this slot was used\n");
    }
    if crate::storage::now_ms() - up.created_ms > SLOT_LIFETIME_MS {
        return status(StatusCode::GONE, "this slot expired\n");
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l != up.size) {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "not the size of the slot\n");
    }
    if let Err((code, text)) = save(&u, &up, body).await {
        return status(code, text);
    }
    match u.storage.uploads.complete(&up.id).await {
        Ok(true) => status(StatusCode::CREATED, ""),
        Ok(false) => status(StatusCode::CONFLICT, "this slot was used\n"),
        Err(e) => {
            tracing::error!("upload complete: {e}");
            status(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
        }
    }
}

/// Why a PUT failed: its status and text.
type Refused = (StatusCode, &'static str);

/// Streams the body to `<dir>/<id>` (through a `.part` file), at most the slot's size.
async fn save(u: &Uploads, up: &Upload, body: Body) -> Result<(), Refused> {
    let fail = |e: std::io::Error| {
        tracing::error!("upload write: {e}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not store the file\n",
        )
    };
    tokio::fs::create_dir_all(&u.dir).await.map_err(fail)?;
    let part = u.dir.join(format!("{}.part", up.id));
    let mut file = tokio::fs::File::create(&part).await.map_err(fail)?;
    let mut body = body.into_data_stream();
    let mut written = 0u64;
    let result = loop {
        match body.next().await {
            None if written == up.size => break Ok(()),
            None => break Err((StatusCode::BAD_REQUEST, "smaller than the slot\n")),
            Some(Err(_)) => break Err((StatusCode::BAD_REQUEST, "the upload broke off\n")),
            Some(Ok(data)) => {
                written += data.len() as u64;
                if written > up.size {
                    break Err((StatusCode::PAYLOAD_TOO_LARGE, "larger than the slot\n"));
                }
                if let Err(e) = file.write_all(&data).await {
                    break Err(fail(e));
                }
            }
        }
    };
    if result.is_ok() {
        file.sync_all().await.map_err(fail)?;
        drop(file);
        tokio::fs::rename(&part, u.dir.join(&up.id))
            .await
            .map_err(fail)?;
    } else {
        drop(file);
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

/// Types a browser may display inline without running anything.
fn inline(t: &str) -> bool {
    let base = t.split(';').next().unwrap_or_default().trim();
    (base.starts_with("image/") && base != "image/svg+xml")
        || base.starts_with("audio/")
        || base.starts_with("video/")
        || base == "text/plain"
        || base == "application/pdf"
}

/// `GET /upload/<id>/<name>`.
pub async fn get(
    State(u): State<Arc<Uploads>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let up = match find(&u, &id, &name).await {
        Ok(up) if up.done => up,
        Ok(_) => return status(StatusCode::NOT_FOUND, "no such file\n"),
        Err(r) => return r,
    };
    let file = match tokio::fs::File::open(u.dir.join(&up.id)).await {
        Ok(f) => f,
        Err(_) => return status(StatusCode::NOT_FOUND, "no such file\n"),
    };
    // Read in chunks as the client takes them: a download holds one chunk, not the file.
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let (kind, disposition) = if inline(&up.content_type) {
        (up.content_type.as_str(), "inline")
    } else {
        ("application/octet-stream", "attachment")
    };
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    let set = |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::CONTENT_TYPE, set(kind.to_string()));
    h.insert(header::CONTENT_LENGTH, set(up.size.to_string()));
    h.insert(
        header::CONTENT_DISPOSITION,
        set(format!(
            "{disposition}; filename*=UTF-8''{}",
            utf8_percent_encode(&up.filename, NON_ALPHANUMERIC)
        )),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=604800, immutable"),
    );
    cors(&mut r);
    r
}

/// Deletes expired files (and slots never used) every hour, in the background.
pub async fn purge_loop(u: Arc<Uploads>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        purge(&u).await;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// One purge.
pub async fn purge(u: &Uploads) {
    let now = crate::storage::now_ms();
    let days = i64::try_from(u.config.upload.expire_after_days).unwrap_or(i64::MAX / 2);
    let before = now.saturating_sub(days.saturating_mul(86_400_000));
    match u
        .storage
        .uploads
        .purge(before, now - SLOT_LIFETIME_MS)
        .await
    {
        Ok(ids) => {
            for id in &ids {
                let _ = tokio::fs::remove_file(u.dir.join(id)).await;
                let _ = tokio::fs::remove_file(u.dir.join(format!("{id}.part"))).await;
            }
            if !ids.is_empty() {
                tracing::info!(n = ids.len(), "expired uploads deleted");
            }
        }
        Err(e) => tracing::warn!("upload purge: {e}"),
    }
}
