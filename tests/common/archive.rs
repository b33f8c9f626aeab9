//! Helpers for the archive tests (XEP-0313): a query written as form fields and RSM, its
//! result messages and `<fin/>` collected as elements.

use tokio_xmpp::Client;

use super::WAIT;
use super::muc::{next, send};

pub const MAM: &str = "urn:xmpp:mam:2";
pub const SID: &str = "urn:xmpp:sid:0";
pub const RSM: &str = "http://jabber.org/protocol/rsm";

/// What a query returned: the forwarded messages with their archive ids, and the iq answer.
pub struct Answer {
    /// (archive id, forwarded message) in the order they came.
    pub results: Vec<(String, minidom::Element)>,
    /// The iq result (with `<fin/>`) or error.
    pub iq: minidom::Element,
}

impl Answer {
    /// The bodies of the forwarded messages.
    pub fn bodies(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|(_, m)| {
                m.children()
                    .find(|c| c.name() == "body")
                    .map(|b| b.text())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The archive ids.
    pub fn ids(&self) -> Vec<String> {
        self.results.iter().map(|(id, _)| id.clone()).collect()
    }

    /// `<fin/>`.
    pub fn fin(&self) -> minidom::Element {
        self.iq
            .get_child("fin", MAM)
            .cloned()
            .unwrap_or_else(|| panic!("no fin in {}", String::from(&self.iq)))
    }

    /// Whether `<fin complete='true'/>`.
    pub fn complete(&self) -> bool {
        self.fin().attr("complete") == Some("true")
    }

    /// `<first/>` and `<last/>` of the RSM answer.
    pub fn first_last(&self) -> (String, String) {
        let set = self.fin().get_child("set", RSM).cloned().unwrap();
        let t = |n: &str| set.get_child(n, RSM).map(|e| e.text()).unwrap_or_default();
        (t("first"), t("last"))
    }

    /// The error condition, if the query failed.
    pub fn condition(&self) -> Option<String> {
        let e = self.iq.children().find(|c| c.name() == "error")?;
        e.children().next().map(|c| c.name().to_string())
    }
}

/// A `<field/>` of the query form.
pub fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

/// Runs a query on the archive at `to` (empty: one's own) with form `fields` and RSM `set`
/// (inner XML), collecting its results until the iq answer; `flip` adds `<flip-page/>`.
pub async fn query(c: &mut Client, to: &str, fields: &str, set: &str) -> Answer {
    let to_attr = if to.is_empty() {
        String::new()
    } else {
        format!(" to='{to}'")
    };
    let form = if fields.is_empty() {
        String::new()
    } else {
        format!(
            "<x xmlns='jabber:x:data' type='submit'>{}{fields}</x>",
            field("FORM_TYPE", MAM)
        )
    };
    let set = if set.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='{RSM}'>{set}</set>")
    };
    let qid = xmppd::stream::random_id();
    send(
        c,
        &format!(
            "<iq type='set' id='{qid}'{to_attr}><query xmlns='{MAM}' queryid='{qid}'>{form}{set}</query></iq>"
        ),
    )
    .await;
    let mut results = Vec::new();
    let collect = async {
        loop {
            let e = next(c).await;
            if e.name() == "iq" && e.attr("id") == Some(qid.as_str()) {
                return e;
            }
            if let Some(r) = e.get_child("result", MAM) {
                assert_eq!(r.attr("queryid"), Some(qid.as_str()), "queryid echoed");
                let fwd = r
                    .get_child("forwarded", "urn:xmpp:forward:0")
                    .expect("forwarded");
                assert!(
                    fwd.get_child("delay", "urn:xmpp:delay").is_some(),
                    "a result carries its delay stamp"
                );
                let m = fwd.get_child("message", "jabber:client").unwrap().clone();
                results.push((r.attr("id").unwrap().to_string(), m));
            }
        }
    };
    let iq = tokio::time::timeout(WAIT, collect)
        .await
        .expect("the archive answered");
    Answer { results, iq }
}

/// The `<stanza-id/>` a message carries from the archive `by`, if any.
pub fn stanza_id(m: &minidom::Element, by: &str) -> Option<String> {
    m.children()
        .find(|c| c.is("stanza-id", SID) && c.attr("by") == Some(by))
        .and_then(|c| c.attr("id").map(str::to_string))
}
