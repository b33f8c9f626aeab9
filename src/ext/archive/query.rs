//! Archive queries (XEP-0313 §4), the same for an account's archive and a room's: the query
//! form (`with`, `start`, `end`, and `#extended`'s `before-id`, `after-id`, `ids`), RSM paging
//! (XEP-0059: `max`, `after`, `before`, `<before/>` for the last page), `<flip-page/>`; and
//! the answer: one `<result/>` message per archived message, forwarded with its delay stamp,
//! then the iq result with `<fin/>`. The group-chat rooms call [`run`] for their archives.

use jid::Jid;

use crate::config::ArchiveConfig;
use crate::router::Router;
use crate::session::Batch;
use crate::stanza::{
    ErrorCondition, NS_FORWARD, NS_MAM, delay, form, iq_error, iq_result, parse_datetime, rsm,
};
use crate::storage::Storage;
use crate::storage::archive::{ArchivePage, ArchiveQuery, Archived, Owner, Page};
use crate::xml::{Element, Limits, parse_fragment};

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's `queryid`, echoed in each result.
    pub queryid: Option<String>,
    /// What to fetch.
    pub query: ArchiveQuery,
    /// `<flip-page/>`: the page's messages newest first.
    pub flip: bool,
}

/// Reads `query` (a `<query xmlns='urn:xmpp:mam:2'/>`); `room` makes `with` an occupant's
/// room JID (its nick) rather than a bare JID.
pub fn parse(query: &Element, cfg: &ArchiveConfig, room: bool) -> Result<Request, ErrorCondition> {
    let mut q = ArchiveQuery::page(Page::After(None), cfg.max_page);
    if let Some(x) = query.get_child("x", form::NS) {
        if form::form_type(x).is_some_and(|t| t != NS_MAM) {
            return Err(ErrorCondition::BadRequest);
        }
        if let Some(w) = form::value(x, "with").filter(|w| !w.is_empty()) {
            let j = Jid::new(w.trim()).map_err(|_| ErrorCondition::BadRequest)?;
            q.with = Some(match (room, j.resource()) {
                (true, Some(nick)) => nick.to_string(),
                (true, None) => return Err(ErrorCondition::BadRequest),
                (false, _) => j.to_bare().to_string(),
            });
        }
        let time = |var: &str| -> Result<Option<i64>, ErrorCondition> {
            match form::value(x, var).filter(|v| !v.trim().is_empty()) {
                Some(v) => parse_datetime(v.trim())
                    .map(Some)
                    .ok_or(ErrorCondition::BadRequest),
                None => Ok(None),
            }
        };
        q.start_ms = time("start")?;
        q.end_ms = time("end")?;
        q.after_id = form::value(x, "after-id").filter(|v| !v.is_empty());
        q.before_id = form::value(x, "before-id").filter(|v| !v.is_empty());
        q.ids = form::values(x, "ids");
        if q.ids.len() > cfg.max_page {
            return Err(ErrorCondition::PolicyViolation);
        }
    }
    if let Some(set) = rsm::request(query)? {
        if let Some(m) = set.max {
            q.max = m.min(cfg.max_page);
        }
        q.page = match (set.before, set.after) {
            (Some(b), _) => Page::Before(Some(b).filter(|b| !b.is_empty())),
            (None, a) => Page::After(a),
        };
    }
    Ok(Request {
        queryid: query.attr("queryid").map(str::to_string),
        query: q,
        flip: query.get_child("flip-page", NS_MAM).is_some(),
    })
}

/// Answers the query `iq` on `owner`'s archive, whose JID is `archive` (what results come
/// from; `None`: the account's own, whose results carry no `from`): the result messages and
/// the iq result, as one batch for the asking session (bounded by `archive.max_page` and
/// `archive.max_page_bytes`, so one queue entry whatever the page). An error reply instead
/// when the query is malformed or names an id not in the archive.
pub async fn run(
    storage: &Storage,
    cfg: &ArchiveConfig,
    owner: Owner<'_>,
    archive: Option<&str>,
    iq: &Element,
) -> Result<Batch, Element> {
    let Some(query) = iq.get_child("query", NS_MAM) else {
        return Err(iq_error(iq, ErrorCondition::BadRequest, None));
    };
    let req =
        parse(query, cfg, matches!(owner, Owner::Room(_))).map_err(|c| iq_error(iq, c, None))?;
    let page = match storage.archive.query(owner, &req.query).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(iq_error(iq, ErrorCondition::ItemNotFound, None)),
        Err(e) => {
            tracing::error!("archive query: {e}");
            return Err(iq_error(iq, ErrorCondition::InternalServerError, None));
        }
    };
    let to = iq.attr("from").unwrap_or_default();
    Ok(answer(page, &req, archive, to, cfg.max_page_bytes, iq))
}

/// The result messages of `page` for `to`, at most `max_bytes` of archived stanzas (at least
/// one; the page is then incomplete on the side away from its anchor), then the iq result.
fn answer(
    mut page: ArchivePage,
    req: &Request,
    archive: Option<&str>,
    to: &str,
    max_bytes: usize,
    iq: &Element,
) -> Batch {
    let backwards = matches!(req.query.page, Page::Before(_));
    // Keep from the anchor outwards: the oldest going forwards, the newest going backwards.
    let mut bytes = 0usize;
    let mut keep = 0usize;
    let n = page.items.len();
    for i in 0..n {
        let item = &page.items[if backwards { n - 1 - i } else { i }];
        bytes = bytes.saturating_add(item.xml.len());
        if keep > 0 && bytes > max_bytes {
            break;
        }
        keep += 1;
    }
    if keep < n {
        page.complete = false;
        if backwards {
            page.items.drain(..n - keep);
        } else {
            page.items.truncate(keep);
        }
    }
    let mut stanzas = Vec::with_capacity(page.items.len() + 1);
    let stamp_by = archive.unwrap_or_else(|| to.split('/').next().unwrap_or(to));
    for item in &page.items {
        let Some(result) = result(item, req.queryid.as_deref(), stamp_by) else {
            continue;
        };
        let mut msg = Element::new("message", crate::stream::NS_CLIENT).with_attr("to", to);
        if let Some(a) = archive {
            msg.set_attr("from", a);
        }
        stanzas.push(msg.with_child(result));
    }
    let ends = page
        .items
        .first()
        .zip(page.items.last())
        .map(|(f, l)| (f.stanza_id.as_str(), l.stanza_id.as_str()));
    let mut fin = Element::new("fin", NS_MAM).with_child(rsm::answer(ends, None, None));
    if page.complete {
        fin.set_attr("complete", "true");
    }
    if req.flip {
        stanzas.reverse();
    }
    stanzas.push(iq_result(iq).with_child(fin));
    Batch {
        stanzas,
        claimed: Vec::new(),
    }
}

/// The `<result/>` of archived message `item` (its id, the asker's `queryid`), forwarded with
/// its delay stamp by `stamp_by`; `None` (logged) if what is stored does not parse.
pub fn result(item: &Archived, queryid: Option<&str>, stamp_by: &str) -> Option<Element> {
    let m = match parse_fragment(&item.xml, Limits::stored()) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("archived message {} does not parse: {e}", item.stanza_id);
            return None;
        }
    };
    let mut result = Element::new("result", NS_MAM).with_attr("id", item.stanza_id.clone());
    if let Some(q) = queryid {
        result.set_attr("queryid", q);
    }
    result.append_child(
        Element::new("forwarded", NS_FORWARD)
            .with_child(delay(stamp_by, item.ts_ms))
            .with_child(m),
    );
    Some(result)
}

/// The query form's fields (XEP-0313 §4.1.1), for a `get`.
pub fn fields(iq: &Element) -> Element {
    let x = form::new("form", NS_MAM)
        .with_child(form::field("with", Some("jid-single"), None, &[]))
        .with_child(form::field("start", Some("text-single"), None, &[]))
        .with_child(form::field("end", Some("text-single"), None, &[]))
        .with_child(form::field("before-id", Some("text-single"), None, &[]))
        .with_child(form::field("after-id", Some("text-single"), None, &[]))
        .with_child(form::field("ids", Some("list-multi"), None, &[]));
    iq_result(iq).with_child(Element::new("query", NS_MAM).with_child(x))
}

/// XEP-0313 §7.1 metadata: the archive's first and last message.
pub async fn metadata(storage: &Storage, owner: Owner<'_>, iq: &Element) -> Element {
    let mut md = Element::new("metadata", NS_MAM);
    match storage.archive.bounds(owner).await {
        Ok(Some((first, last))) => {
            for (name, m) in [("start", first), ("end", last)] {
                md.append_child(
                    Element::new(name, NS_MAM)
                        .with_attr("id", m.stanza_id)
                        .with_attr("timestamp", crate::stanza::datetime(m.ts_ms)),
                );
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!("archive metadata: {e}");
            return iq_error(iq, ErrorCondition::InternalServerError, None);
        }
    }
    iq_result(iq).with_child(md)
}

/// Hands the answer to query `iq` to the asking session as one queue entry (results before
/// the iq result, nothing between them); a session that cannot take it gets
/// `resource-constraint` instead.
pub fn deliver(router: &Router, iq: &Element, batch: Batch) {
    let session = iq
        .attr("from")
        .and_then(|f| jid::FullJid::new(f).ok())
        .and_then(|j| router.registry.get(&j));
    let Some(h) = session else { return };
    if router.deliver_batch(&h, batch).is_err() {
        router.send_to_session(iq_error(iq, ErrorCondition::ResourceConstraint, None));
    }
}
