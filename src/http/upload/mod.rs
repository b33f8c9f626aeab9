//! HTTP File Upload (XEP-0363): the `upload.<host>` service hands out slots (a PUT URL with a
//! token, a GET URL) within a size limit and a per-account quota; `files.rs` serves the PUT
//! and the GET on the HTTP listener and purges old files.
//!
//! A slot's id is 128 random bits: it is the secret part of both URLs, as the XEP expects
//! ("the GET URL is the capability"). The PUT also needs `Authorization: Bearer <token>`, an
//! HMAC of the id under a key of this process, so a GET URL that was shared cannot be used to
//! replace the file; a slot can be filled once. Files live under `<data_dir>/uploads/<id>`.

pub mod files;

use std::path::PathBuf;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use jid::Jid;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Config;
use crate::router::{HookFuture, Router, Service};
use crate::stanza::{ErrorCondition, error_reply_with, form, iq_error, iq_result, is_stanza};
use crate::storage::{Storage, Upload};
use crate::xml::Element;

/// `urn:xmpp:http:upload:0`
pub const NS: &str = "urn:xmpp:http:upload:0";
const NS_INFO: &str = crate::ext::disco::NS_INFO;
const NS_ITEMS: &str = crate::ext::disco::NS_ITEMS;
/// Longest file name kept, in bytes.
const MAX_NAME: usize = 200;

/// What the upload service and its HTTP handlers share.
pub struct Uploads {
    pub(crate) storage: Storage,
    pub(crate) config: Arc<Config>,
    /// Where the files are.
    pub(crate) dir: PathBuf,
    /// The key of the PUT tokens (this process's; a restart invalidates pending slots only).
    key: [u8; 32],
}

impl Uploads {
    /// The shared state for `config`.
    pub fn new(storage: Storage, config: Arc<Config>) -> Arc<Uploads> {
        Arc::new(Uploads {
            dir: config.server.data_dir.join("uploads"),
            storage,
            config,
            key: crate::stream::sasl::scram::random_bytes::<32>(),
        })
    }

    /// The PUT token of slot `id`.
    pub(crate) fn token(&self, id: &str) -> String {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The service of one host.
pub struct UploadService {
    uploads: Arc<Uploads>,
    host: String,
    domain: String,
    /// `scheme://authority` the files are reached at.
    base: String,
}

impl UploadService {
    /// The service at `domain` for accounts of `host`, with URLs under `base`.
    pub fn new(uploads: Arc<Uploads>, host: &str, domain: &str, base: &str) -> Self {
        UploadService {
            uploads,
            host: host.to_string(),
            domain: domain.to_string(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn disco_info(&self, iq: &Element) -> Element {
        let max = self.uploads.config.upload.max_file_size.to_string();
        let form =
            form::new("result", NS).with_child(form::field("max-file-size", None, None, &[&max]));
        let query = Element::new("query", NS_INFO)
            .with_child(
                Element::new("identity", NS_INFO)
                    .with_attr("category", "store")
                    .with_attr("type", "file")
                    .with_attr("name", "HTTP File Upload"),
            )
            .with_child(Element::new("feature", NS_INFO).with_attr("var", NS_INFO))
            .with_child(Element::new("feature", NS).with_attr("var", NS))
            .with_child(form);
        iq_result(iq).with_child(query)
    }

    /// XEP-0363 §4: a slot request.
    async fn slot(&self, iq: &Element, req: &Element) -> Element {
        let cfg = &self.uploads.config.upload;
        // Only accounts of this host may upload here.
        let owner = match iq.attr("from").map(Jid::new) {
            Some(Ok(j)) if j.domain().as_str() == self.host && j.node().is_some() => j,
            _ => {
                return iq_error(
                    iq,
                    ErrorCondition::Forbidden,
                    Some("accounts of this server only"),
                );
            }
        };
        let filename = sanitize(req.attr("filename").unwrap_or_default());
        let Some(size) = req.attr("size").and_then(|s| s.trim().parse::<u64>().ok()) else {
            return iq_error(iq, ErrorCondition::BadRequest, Some("a size is required"));
        };
        if filename.is_empty() || size == 0 {
            return iq_error(
                iq,
                ErrorCondition::BadRequest,
                Some("a file name and a size are required"),
            );
        }
        if size > cfg.max_file_size {
            // §5: the limit, for the client to tell its user.
            let app = Element::new("file-too-large", NS).with_child(
                Element::new("max-file-size", NS).with_text(cfg.max_file_size.to_string()),
            );
            return error_reply_with(iq, ErrorCondition::NotAcceptable, app)
                .unwrap_or_else(|| iq_result(iq));
        }
        let content_type = req
            .attr("content-type")
            .filter(|t| valid_type(t))
            .unwrap_or("application/octet-stream")
            .to_string();
        let slot = Upload {
            id: format!(
                "{}{}",
                crate::stream::random_id(),
                crate::stream::random_id()
            ),
            host: self.host.clone(),
            username: owner.node().map(|n| n.to_string()).unwrap_or_default(),
            filename: filename.clone(),
            size,
            content_type,
            created_ms: crate::storage::now_ms(),
            done: false,
        };
        match self
            .uploads
            .storage
            .uploads
            .reserve(&slot, cfg.quota_per_user)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return iq_error(
                    iq,
                    ErrorCondition::ResourceConstraint,
                    Some("your upload quota is used up; old files expire"),
                );
            }
            Err(e) => {
                tracing::error!("upload slot: {e}");
                return iq_error(iq, ErrorCondition::InternalServerError, None);
            }
        }
        let url = format!(
            "{}/upload/{}/{}",
            self.base,
            slot.id,
            utf8_percent_encode(&filename, NON_ALPHANUMERIC)
        );
        let put = Element::new("put", NS)
            .with_attr("url", url.clone())
            .with_child(
                Element::new("header", NS)
                    .with_attr("name", "Authorization")
                    .with_text(format!("Bearer {}", self.uploads.token(&slot.id))),
            );
        let get = Element::new("get", NS).with_attr("url", url);
        iq_result(iq).with_child(Element::new("slot", NS).with_child(put).with_child(get))
    }
}

impl Service for UploadService {
    fn handle<'a>(&'a self, router: &'a Router, stanza: Element) -> HookFuture<'a> {
        Box::pin(async move {
            if !is_stanza(&stanza) || stanza.name() != "iq" {
                // Messages and presence to the service: nothing to do with them.
                if stanza.name() == "message" {
                    router.bounce(&stanza, ErrorCondition::ServiceUnavailable);
                }
                return;
            }
            let kind = stanza.attr("type").unwrap_or_default();
            if !matches!(kind, "get" | "set") {
                return;
            }
            let to_service = stanza.attr("to") == Some(self.domain.as_str());
            let payload = stanza.children().next();
            let reply = match payload.map(|p| (p.ns(), p.name(), kind)) {
                Some((NS_INFO, "query", "get")) if to_service => self.disco_info(&stanza),
                Some((NS_ITEMS, "query", "get")) if to_service => {
                    iq_result(&stanza).with_child(Element::new("query", NS_ITEMS))
                }
                Some((NS, "request", "get")) if to_service => match payload {
                    Some(req) => self.slot(&stanza, req).await,
                    None => iq_result(&stanza),
                },
                _ => iq_error(&stanza, ErrorCondition::ServiceUnavailable, None),
            };
            router.route(reply).await;
        })
    }

    fn name(&self) -> &str {
        "HTTP File Upload"
    }
}

/// A file name as stored and put in URLs: its last path component, without control
/// characters, at most [`MAX_NAME`] bytes.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out = String::new();
    for c in base.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        out.push(c);
    }
    match out.trim() {
        "" | "." | ".." => String::new(),
        t => t.to_string(),
    }
}

/// A MIME type of the form `type/subtype` (parameters allowed), nothing that could break a
/// header.
fn valid_type(t: &str) -> bool {
    t.len() <= 100
        && t.contains('/')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+-.;= _".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(sanitize("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize(".."), "");
        assert_eq!(sanitize(&"é".repeat(300)).len(), MAX_NAME);
        assert!(valid_type("image/png") && valid_type("text/plain; charset=utf-8"));
        assert!(!valid_type("text/html\r\nX: y") && !valid_type("nope"));
    }
}
