//! The element tree that the server routes: a small, owned DOM with namespace-aware names,
//! built by [`super::parser::StreamParser`] and serialised by [`Element::write_to`].
//!
//! Attributes without a namespace are stored by local name; `xml:lang` (the only namespaced
//! attribute XMPP uses on stanzas, RFC 6120 §8.1.5) is stored under the name `xml:lang`, and any
//! other namespaced attribute under `{namespace}name` and written with a generated prefix.
//!
//! The namespace is rxml's [`Namespace`]: a `&'static str` for the namespaces the server writes,
//! or a shared, interned string for those a peer declared, so that one long namespace declared
//! once costs its bytes once however many elements are in it.

use rxml::Namespace;

use super::escape::{escape_attr, escape_text};

/// The XML namespace (bound to the `xml` prefix by XML Namespaces §3).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// A child of an element: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// One XML element with its namespace, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: Namespace<'static>,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element `name` in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<Namespace<'static>>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets an attribute.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace URI ("" for none).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The namespace, shared (cloning it copies no string).
    pub fn namespace(&self) -> &Namespace<'static> {
        &self.ns
    }

    /// What this element costs in memory before its children: the node that holds it, its
    /// name and its attributes. The parser charges it, and text, against
    /// `max_stanza_memory`; the namespace is shared and costs nothing per element.
    pub fn cost(&self) -> usize {
        std::mem::size_of::<Node>()
            + self.name.len()
            + self
                .attrs
                .iter()
                .map(|(k, v)| std::mem::size_of::<(String, String)>() + k.len() + v.len())
                .sum::<usize>()
    }

    /// What this element costs in memory with all its descendants (the sum of [`Self::cost`]
    /// and text), the measure queues are bounded by.
    pub fn deep_cost(&self) -> usize {
        self.cost()
            + self
                .children
                .iter()
                .map(|n| match n {
                    Node::Element(e) => e.deep_cost(),
                    Node::Text(t) => std::mem::size_of::<Node>() + t.len(),
                })
                .sum::<usize>()
    }

    /// Moves this element and its descendants from namespace `from` to `to`: a stanza read on
    /// a server stream (`jabber:server`) becomes one the router knows (`jabber:client`).
    pub fn rename_ns(&mut self, from: &str, to: &'static str) {
        if self.ns == from {
            self.ns = to.into();
        }
        for n in &mut self.children {
            if let Node::Element(e) = n {
                e.rename_ns(from, to);
            }
        }
    }

    /// Whether this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The value of an attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) an attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if let Some(slot) = self.attrs.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = value;
        } else {
            self.attrs.push((name, value));
        }
    }

    /// Removes an attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(pos).1)
    }

    /// All attributes, in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All child nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Child elements.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `name` in `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|e| e.is(name, ns))
    }

    /// Appends a child element.
    pub fn append_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Appends text, merged with text just before it (the parser emits long text in several
    /// events); returns what it costs in memory.
    pub fn append_text(&mut self, text: String) -> usize {
        if let Some(Node::Text(last)) = self.children.last_mut() {
            last.push_str(&text);
            return text.len();
        }
        let cost = std::mem::size_of::<Node>() + text.len();
        self.children.push(Node::Text(text));
        cost
    }

    /// Removes and returns the first child element `name` in `ns`.
    pub fn take_child(&mut self, name: &str, ns: &str) -> Option<Element> {
        let pos = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(name, ns)))?;
        match self.children.remove(pos) {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    /// Removes every child element `name` in `ns`.
    pub fn remove_children(&mut self, name: &str, ns: &str) {
        self.retain_children(|e| !e.is(name, ns));
    }

    /// Keeps the child elements for which `keep` is true (and all text).
    pub fn retain_children(&mut self, keep: impl Fn(&Element) -> bool) {
        self.children.retain(|n| match n {
            Node::Element(e) => keep(e),
            Node::Text(_) => true,
        });
    }

    /// The concatenated direct text content.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Serialises this element; `parent_ns` is the default namespace in scope, so that a stanza
    /// written inside a `jabber:client` stream carries no redundant `xmlns`.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: &str) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        if self.ns.as_str() != parent_ns {
            out.extend_from_slice(b" xmlns='");
            escape_attr(&self.ns, out);
            out.push(b'\'');
        }
        let mut prefix_no = 0;
        for (k, v) in &self.attrs {
            out.push(b' ');
            if let Some(rest) = k.strip_prefix('{') {
                // `{ns}name`: declare a prefix for this attribute alone.
                let (ns, local) = rest.split_once('}').unwrap_or(("", rest));
                prefix_no += 1;
                out.extend_from_slice(format!("xmlns:a{prefix_no}='").as_bytes());
                escape_attr(ns, out);
                out.extend_from_slice(format!("' a{prefix_no}:").as_bytes());
                out.extend_from_slice(local.as_bytes());
            } else {
                out.extend_from_slice(k.as_bytes());
            }
            out.extend_from_slice(b"='");
            escape_attr(v, out);
            out.push(b'\'');
        }
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for c in &self.children {
            match c {
                Node::Element(e) => e.write_to(out, self.ns.as_str()),
                Node::Text(t) => escape_text(t, out),
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serialises to a string with the given default namespace in scope.
    pub fn to_string_in(&self, parent_ns: &str) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out, parent_ns);
        // The writer only emits UTF-8 taken from `String`s.
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_namespaces_only_when_they_change() {
        let el = Element::new("iq", "jabber:client")
            .with_attr("type", "result")
            .with_attr("id", "a'<&\"")
            .with_child(Element::new("ping", "urn:xmpp:ping"))
            .with_child(Element::new("x", "jabber:client").with_text("1 < 2 & ]]>"));
        assert_eq!(
            el.to_string_in("jabber:client"),
            "<iq type='result' id='a&apos;&lt;&amp;&quot;'><ping xmlns='urn:xmpp:ping'/>\
             <x>1 &lt; 2 &amp; ]]&gt;</x></iq>"
        );
    }

    #[test]
    fn namespaced_attributes_get_a_prefix() {
        let el = Element::new("a", "b")
            .with_attr("xml:lang", "en")
            .with_attr("{urn:x}y", "z");
        assert_eq!(
            el.to_string_in("b"),
            "<a xml:lang='en' xmlns:a1='urn:x' a1:y='z'/>"
        );
    }
}
