//! The XML layer (sans-IO): a streaming parser fed bytes, the element tree, the writer.
//!
//! RFC 6120 §11 (XML usage) is enforced here; nothing in this module does I/O.

pub mod element;
pub mod escape;
#[doc(hidden)]
pub mod fuzzing;
pub mod parser;

pub use element::{Element, NS_XML, Node};
pub use parser::{Limits, StreamEvent, StreamHeader, StreamParser, XmlError, parse_fragment};
