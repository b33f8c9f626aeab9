//! Escaping for the XML writer (XML 1.0 §2.4 character data, §3.1 attribute values).
//!
//! `>` is escaped in text too, so that `]]>` can never appear in character data.

/// Appends `s` escaped for use as character data.
pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape(s, out, false);
}

/// Appends `s` escaped for use inside a single- or double-quoted attribute value.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape(s, out, true);
}

fn escape(s: &str, out: &mut Vec<u8>, attr: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &[u8] = match b {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'\'' if attr => b"&apos;",
            b'"' if attr => b"&quot;",
            // Attribute-value normalisation would turn these into spaces (XML 1.0 §3.3.3).
            b'\t' if attr => b"&#9;",
            b'\n' if attr => b"&#10;",
            b'\r' => b"&#13;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut v = Vec::new();
        escape_attr("a<b>&'\"\n", &mut v);
        assert_eq!(v, b"a&lt;b&gt;&amp;&apos;&quot;&#10;");
        let mut v = Vec::new();
        escape_text("x'\"\r", &mut v);
        assert_eq!(v, b"x'\"&#13;");
    }
}
