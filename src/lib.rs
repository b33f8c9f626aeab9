//! xmppd: an XMPP server (RFC 6120/6121).
pub mod xml;
