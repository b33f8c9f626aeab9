//! Data forms (XEP-0004), as far as the server builds and reads them: a form of fields with
//! values (room configuration, disco extensions, upload limits), and the values of a submitted
//! form by field name.

use crate::xml::Element;

/// `jabber:x:data`
pub const NS: &str = "jabber:x:data";

/// A form of `kind` (`form`, `result`, `submit`) whose hidden `FORM_TYPE` is `form_type`.
pub fn new(kind: &str, form_type: &str) -> Element {
    Element::new("x", NS)
        .with_attr("type", kind)
        .with_child(field("FORM_TYPE", Some("hidden"), None, &[form_type]))
}

/// A field `var` of type `kind` (none for a result form), labelled `label`, with `values`.
pub fn field(var: &str, kind: Option<&str>, label: Option<&str>, values: &[&str]) -> Element {
    let mut f = Element::new("field", NS).with_attr("var", var);
    if let Some(k) = kind {
        f.set_attr("type", k);
    }
    if let Some(l) = label {
        f.set_attr("label", l);
    }
    for v in values {
        f.append_child(Element::new("value", NS).with_text(*v));
    }
    f
}

/// A `list-single` or `list-multi` field with its options as (value, label).
pub fn list(
    var: &str,
    kind: &str,
    label: &str,
    values: &[&str],
    options: &[(&str, &str)],
) -> Element {
    let mut f = field(var, Some(kind), Some(label), values);
    for (v, l) in options {
        f.append_child(
            Element::new("option", NS)
                .with_attr("label", *l)
                .with_child(Element::new("value", NS).with_text(*v)),
        );
    }
    f
}

/// The form's `FORM_TYPE`, if any.
pub fn form_type(x: &Element) -> Option<String> {
    values(x, "FORM_TYPE").into_iter().next()
}

/// The values of field `var` of a submitted form (empty if absent).
pub fn values(x: &Element, var: &str) -> Vec<String> {
    x.children()
        .filter(|f| f.is("field", NS) && f.attr("var") == Some(var))
        .flat_map(|f| {
            f.children()
                .filter(|v| v.is("value", NS))
                .map(Element::text)
        })
        .collect()
}

/// The first value of field `var`, if the form has the field.
pub fn value(x: &Element, var: &str) -> Option<String> {
    let f = x
        .children()
        .find(|f| f.is("field", NS) && f.attr("var") == Some(var))?;
    Some(
        f.children()
            .find(|v| v.is("value", NS))
            .map(Element::text)
            .unwrap_or_default(),
    )
}

/// A boolean field's value (XEP-0004 §3.3: `1`/`true` or `0`/`false`), if present and valid.
pub fn boolean(x: &Element, var: &str) -> Option<Result<bool, ()>> {
    // Case aside (some clients write "True"), as XEP-0004 spells them.
    value(x, var).map(|v| match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_builds() {
        let x = new("submit", "urn:test")
            .with_child(field("a", None, None, &["1"]))
            .with_child(field("m", None, None, &["x", "y"]));
        assert_eq!(form_type(&x).as_deref(), Some("urn:test"));
        assert_eq!(boolean(&x, "a"), Some(Ok(true)));
        assert_eq!(values(&x, "m"), vec!["x", "y"]);
        assert_eq!(value(&x, "none"), None);
        assert_eq!(boolean(&x, "m"), Some(Err(())));
    }
}
