//! The XMPP names of a server certificate (RFC 6120 §13.7.1.4, RFC 6125 §6, RFC 7590 §3.1):
//! besides the DNS-ID that webpki checks (`dNSName`, with a wildcard in the leftmost label),
//! a peer's certificate may name its domain by
//! - **SRV-ID** (RFC 4985): an `otherName` `id-on-dnsSRV` whose value is
//!   `_xmpp-server.<domain>` (or `_xmpps-server.<domain>`, XEP-0368's service), and
//! - **XmppAddr**: an `otherName` `id-on-xmppAddr` whose value is the bare domain.
//!
//! Neither admits wildcards. The common name is never used: RFC 6125 §6.4.4 forbids it when
//! the certificate has subjectAltNames, and certificates without them are not issued any more.
//! Only names are read here; the chain is validated by rustls before this is asked.

use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;

/// `id-on-xmppAddr`, 1.3.6.1.5.5.7.8.5.
const XMPP_ADDR: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 8, 5];
/// `id-on-dnsSRV`, 1.3.6.1.5.5.7.8.7.
const DNS_SRV: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 8, 7];
/// The SRV services a server certificate may be issued for.
const SERVICES: [&str; 2] = ["_xmpp-server.", "_xmpps-server."];

/// Whether the certificate (DER) names `domain` by SRV-ID or XmppAddr.
pub fn xmpp_names_match(der: &[u8], domain: &str) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let domain = domain.trim_end_matches('.');
    san.value.general_names.iter().any(|name| {
        let GeneralName::OtherName(oid, value) = name else {
            return false;
        };
        let Some(value) = other_name_text(value) else {
            return false;
        };
        if is(oid, XMPP_ADDR) {
            value.eq_ignore_ascii_case(domain)
        } else if is(oid, DNS_SRV) {
            SERVICES.iter().any(|service| {
                value.len() > service.len()
                    && value.is_char_boundary(service.len())
                    && value[..service.len()].eq_ignore_ascii_case(service)
                    && value[service.len()..].eq_ignore_ascii_case(domain)
            })
        } else {
            false
        }
    })
}

fn is(oid: &Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter().is_some_and(|i| i.eq(arcs.iter().copied()))
}

/// The text of an otherName's `[0] EXPLICIT` value: a UTF8String (XmppAddr) or an IA5String
/// (SRV-ID; some issuers write UTF8String there too, and the value is what is compared).
fn other_name_text(value: &[u8]) -> Option<&str> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    match inner.tag() {
        Tag::Utf8String | Tag::Ia5String => std::str::from_utf8(inner.data).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert(sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn other(arcs: &[u64], v: &str) -> SanType {
        SanType::OtherName((arcs.to_vec(), v.into()))
    }

    #[test]
    fn xmpp_addr_names_the_domain_exactly() {
        let der = cert(vec![other(XMPP_ADDR, "B.test")]);
        assert!(xmpp_names_match(&der, "b.test"));
        assert!(xmpp_names_match(&der, "b.test."));
        assert!(!xmpp_names_match(&der, "c.b.test"));
        assert!(!xmpp_names_match(&der, "test"));
    }

    #[test]
    fn srv_id_is_for_the_server_services_only() {
        let der = cert(vec![other(DNS_SRV, "_xmpp-server.b.test")]);
        assert!(xmpp_names_match(&der, "b.test"));
        assert!(!xmpp_names_match(&der, "a.test"));
        let tls = cert(vec![other(DNS_SRV, "_xmpps-server.b.test")]);
        assert!(xmpp_names_match(&tls, "b.test"));
        let client = cert(vec![other(DNS_SRV, "_xmpp-client.b.test")]);
        assert!(!xmpp_names_match(&client, "b.test"));
    }

    #[test]
    fn srv_id_as_ia5_string_as_rfc_4985_writes_it() {
        let mut der = cert(vec![other(DNS_SRV, "_xmpp-server.b.test")]);
        // rcgen writes UTF8String (tag 0x0c); RFC 4985 says IA5String (0x16): same bytes else.
        let text = b"_xmpp-server.b.test";
        let at = der.windows(text.len()).position(|w| w == text).unwrap();
        let tag = at - 2; // tag, one length byte, the text
        assert_eq!(der[tag], 0x0c);
        der[tag] = 0x16;
        assert!(xmpp_names_match(&der, "b.test"));
    }

    #[test]
    fn a_dns_name_or_another_oid_is_not_an_xmpp_name() {
        let der = cert(vec![
            SanType::DnsName("b.test".try_into().unwrap()),
            other(&[1, 3, 6, 1, 4, 1, 99999, 1], "b.test"),
        ]);
        assert!(!xmpp_names_match(&der, "b.test"));
        assert!(!xmpp_names_match(b"not a certificate", "b.test"));
    }
}
