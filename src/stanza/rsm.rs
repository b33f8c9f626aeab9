//! Result Set Management (XEP-0059), as far as the server pages lists: the requested `max`
//! and `after`/`before`, and the `<set/>` that answers a page.

use super::ErrorCondition;
use crate::xml::Element;

/// `http://jabber.org/protocol/rsm`
pub const NS: &str = "http://jabber.org/protocol/rsm";

/// A page request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// Items wanted at most (the server caps it).
    pub max: Option<usize>,
    /// The page after this item.
    pub after: Option<String>,
    /// The page before this item (`Some("")`: the last page).
    pub before: Option<String>,
}

/// The `<set/>` child of `query`, if any; `bad-request` for a malformed `max`.
pub fn request(query: &Element) -> Result<Option<Request>, ErrorCondition> {
    let Some(set) = query.get_child("set", NS) else {
        return Ok(None);
    };
    let max = match set.get_child("max", NS) {
        Some(m) => Some(
            m.text()
                .trim()
                .parse::<usize>()
                .map_err(|_| ErrorCondition::BadRequest)?,
        ),
        None => None,
    };
    Ok(Some(Request {
        max,
        after: set.get_child("after", NS).map(Element::text),
        before: set.get_child("before", NS).map(Element::text),
    }))
}

/// The `<set/>` answering a page from `first` (at `index`) to `last`, of `count` items in all
/// when the server counts them (an archive does not: counting is a scan).
pub fn answer(
    first_last: Option<(&str, &str)>,
    index: Option<usize>,
    count: Option<u64>,
) -> Element {
    let mut set = Element::new("set", NS);
    if let Some((first, last)) = first_last {
        let mut f = Element::new("first", NS).with_text(first);
        if let Some(i) = index {
            f.set_attr("index", i.to_string());
        }
        set.append_child(f);
        set.append_child(Element::new("last", NS).with_text(last));
    }
    if let Some(n) = count {
        set.append_child(Element::new("count", NS).with_text(n.to_string()));
    }
    set
}
