//! Stanza helpers: kinds, stanza errors (RFC 6120 §8.3) and error replies.
//! A stanza error never closes the stream, and an error is never answered with an error.

pub mod form;
pub mod rsm;
pub mod shared;

use crate::stream::NS_CLIENT;
use crate::xml::Element;

/// `urn:ietf:params:xml:ns:xmpp-stanzas`
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The defined conditions of RFC 6120 §8.3.3, with their usual error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCondition {
    /// modify
    BadRequest,
    /// cancel
    Conflict,
    /// cancel
    FeatureNotImplemented,
    /// auth
    Forbidden,
    /// cancel
    InternalServerError,
    /// cancel
    ItemNotFound,
    /// modify
    JidMalformed,
    /// modify
    NotAcceptable,
    /// cancel
    NotAllowed,
    /// auth
    NotAuthorized,
    /// modify
    PolicyViolation,
    /// wait
    RecipientUnavailable,
    /// auth
    RegistrationRequired,
    /// cancel
    RemoteServerNotFound,
    /// wait
    RemoteServerTimeout,
    /// wait
    ResourceConstraint,
    /// cancel
    ServiceUnavailable,
    /// wait
    UnexpectedRequest,
}

impl ErrorCondition {
    /// Element name and default `type` attribute.
    pub fn parts(self) -> (&'static str, &'static str) {
        use ErrorCondition::*;
        match self {
            BadRequest => ("bad-request", "modify"),
            Conflict => ("conflict", "cancel"),
            FeatureNotImplemented => ("feature-not-implemented", "cancel"),
            Forbidden => ("forbidden", "auth"),
            InternalServerError => ("internal-server-error", "cancel"),
            ItemNotFound => ("item-not-found", "cancel"),
            JidMalformed => ("jid-malformed", "modify"),
            NotAcceptable => ("not-acceptable", "modify"),
            NotAllowed => ("not-allowed", "cancel"),
            NotAuthorized => ("not-authorized", "auth"),
            PolicyViolation => ("policy-violation", "modify"),
            RecipientUnavailable => ("recipient-unavailable", "wait"),
            RegistrationRequired => ("registration-required", "auth"),
            RemoteServerNotFound => ("remote-server-not-found", "cancel"),
            RemoteServerTimeout => ("remote-server-timeout", "wait"),
            ResourceConstraint => ("resource-constraint", "wait"),
            ServiceUnavailable => ("service-unavailable", "cancel"),
            UnexpectedRequest => ("unexpected-request", "wait"),
        }
    }
}

/// Whether `el` is a stanza (message, presence or iq in `jabber:client`).
pub fn is_stanza(el: &Element) -> bool {
    el.ns() == NS_CLIENT && matches!(el.name(), "message" | "presence" | "iq")
}

/// Whether `el` is of type `error` (never to be answered with an error, RFC 6120 §8.3.1).
pub fn is_error(el: &Element) -> bool {
    el.attr("type") == Some("error")
}

/// The error reply to `stanza`: addresses swapped, `type='error'`, the same `id`, the original
/// payload kept for messages and presence (§8.3.1), and the `<error/>` child. `None` for an error.
pub fn error_reply(
    stanza: &Element,
    condition: ErrorCondition,
    text: Option<&str>,
) -> Option<Element> {
    if is_error(stanza) {
        return None;
    }
    let (name, kind) = condition.parts();
    let mut reply = Element::new(stanza.name(), NS_CLIENT);
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = stanza.attr("from") {
        reply.set_attr("to", from);
    }
    if let Some(to) = stanza.attr("to") {
        reply.set_attr("from", to);
    }
    reply.set_attr("type", "error");
    if stanza.name() != "iq" {
        for c in stanza.children() {
            reply.append_child(c.clone());
        }
    }
    let mut err = Element::new("error", NS_CLIENT)
        .with_attr("type", kind)
        .with_child(Element::new(name, NS_STANZAS));
    if let Some(t) = text {
        err.append_child(
            Element::new("text", NS_STANZAS)
                .with_attr("xml:lang", "en")
                .with_text(t),
        );
    }
    reply.append_child(err);
    Some(reply)
}

/// [`error_reply`] with an application-specific condition element added (RFC 6120 §8.3.2).
pub fn error_reply_with(
    stanza: &Element,
    condition: ErrorCondition,
    app: Element,
) -> Option<Element> {
    let mut reply = error_reply(stanza, condition, None)?;
    let mut err = reply.take_child("error", NS_CLIENT)?;
    err.append_child(app);
    reply.append_child(err);
    Some(reply)
}

/// The error reply to an iq request (an iq of type error never gets one: then an empty result,
/// which the router drops like any result addressed to the server).
pub fn iq_error(iq: &Element, condition: ErrorCondition, text: Option<&str>) -> Element {
    error_reply(iq, condition, text).unwrap_or_else(|| iq_result(iq))
}

/// An empty `type='result'` reply to an iq.
pub fn iq_result(iq: &Element) -> Element {
    let mut r = Element::new("iq", NS_CLIENT).with_attr("type", "result");
    if let Some(id) = iq.attr("id") {
        r.set_attr("id", id);
    }
    if let Some(from) = iq.attr("from") {
        r.set_attr("to", from);
    }
    if let Some(to) = iq.attr("to") {
        r.set_attr("from", to);
    }
    r
}

/// Checks the RFC 6120 §8.2.3 shape of an iq: an `id`, a known `type`, and exactly one payload
/// child for `get`/`set`. Returns the condition to answer with when it is wrong.
pub fn check_iq(iq: &Element) -> Result<(), ErrorCondition> {
    if iq.attr("id").is_none_or(str::is_empty) {
        return Err(ErrorCondition::BadRequest);
    }
    match iq.attr("type") {
        Some("get" | "set") if iq.children().count() == 1 => Ok(()),
        Some("result" | "error") => Ok(()),
        _ => Err(ErrorCondition::BadRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        let msg = Element::new("message", NS_CLIENT)
            .with_attr("from", "a@x/r")
            .with_attr("to", "b@x")
            .with_attr("id", "7")
            .with_child(Element::new("body", NS_CLIENT).with_text("hi"));
        let r = error_reply(&msg, ErrorCondition::ServiceUnavailable, None).unwrap();
        assert_eq!(
            r.to_string_in(NS_CLIENT),
            "<message id='7' to='a@x/r' from='b@x' type='error'><body>hi</body>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        );
        assert!(error_reply(&r, ErrorCondition::BadRequest, None).is_none());
    }

    #[test]
    fn iq_shape() {
        let iq = |t: &str, n: usize| {
            let mut e = Element::new("iq", NS_CLIENT)
                .with_attr("id", "1")
                .with_attr("type", t);
            for _ in 0..n {
                e.append_child(Element::new("q", "urn:x"));
            }
            e
        };
        assert!(check_iq(&iq("get", 1)).is_ok());
        assert!(check_iq(&iq("get", 0)).is_err());
        assert!(check_iq(&iq("set", 2)).is_err());
        assert!(check_iq(&iq("result", 0)).is_ok());
        assert!(check_iq(&iq("bogus", 1)).is_err());
    }
}

/// `urn:xmpp:delay` (XEP-0203)
pub const NS_DELAY: &str = "urn:xmpp:delay";

/// `urn:xmpp:sid:0` (XEP-0359): archives (an account's, a room's) stamp their ids with it.
pub const NS_SID: &str = "urn:xmpp:sid:0";
/// `urn:xmpp:forward:0` (XEP-0297): carbons and archive results wrap messages in it.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// `urn:xmpp:hints` (XEP-0334): offline storage and the archive read them.
pub const NS_HINTS: &str = "urn:xmpp:hints";
/// `urn:xmpp:mam:2` (XEP-0313): the accounts' and the rooms' archives answer it.
pub const NS_MAM: &str = "urn:xmpp:mam:2";

/// `jabber:iq:register` (XEP-0077), before login (c2s) and after (ext).
pub const NS_REGISTER: &str = "jabber:iq:register";
/// `urn:xmpp:carbons:2` (XEP-0280): the session core needs it too (a copy is not re-routed).
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
/// `http://jabber.org/features/iq-register` (XEP-0077 stream feature).
pub const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";

/// A XEP-0203 `<delay/>` stamped by `from` at `ms` (milliseconds since the epoch): offline
/// messages and stanzas resent after a resumption carry one.
pub fn delay(from: &str, ms: i64) -> Element {
    Element::new("delay", NS_DELAY)
        .with_attr("from", from)
        .with_attr("stamp", datetime(ms))
}

/// An RFC 3339 UTC timestamp (XEP-0082 DateTime) for milliseconds since the epoch.
pub fn datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the epoch of an XEP-0082 DateTime (`2026-11-23T23:59:59.123Z`, with an
/// optional fraction and a `Z` or `±hh:mm` offset); `None` if it is not one.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n.min(3)];
        millis = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
        rest = &frac[n..];
    }
    let offset_min = match rest.as_bytes() {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let mi = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if ![h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) {
                return None;
            }
            if *sign == b'+' {
                h * 60 + mi
            } else {
                -(h * 60 + mi)
            }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant's algorithm), the inverse of `datetime`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn parse_datetime() {
        use super::parse_datetime as p;
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(p("2026-11-23T23:59:59.123Z"), Some(1_795_478_399_123));
        assert_eq!(p("2000-02-29T01:00:00+01:00"), Some(951_782_400_000));
        assert_eq!(p("2000-02-29T00:00:00.5Z"), Some(951_782_400_500));
        for bad in [
            "",
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T00:00:00",
            "x000-02-29T00:00:00Z",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn datetime() {
        assert_eq!(super::datetime(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::datetime(1_795_478_399_123),
            "2026-11-23T23:59:59.123Z"
        );
        assert_eq!(super::datetime(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
