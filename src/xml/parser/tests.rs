//! Parser tests: partial input at every byte boundary, and the hostile inputs of RFC 6120 §11.

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>";

/// Feeds `input` in pieces of `chunk` bytes and collects every event (or the first error).
fn parse_chunked(input: &[u8], chunk: usize, limits: Limits) -> Result<Vec<StreamEvent>, XmlError> {
    let mut p = StreamParser::new(limits);
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        let mut rest = piece;
        while let Some(ev) = p.next(&mut rest)? {
            out.push(ev);
        }
        assert!(rest.is_empty(), "parser must consume what it was given");
    }
    Ok(out)
}

fn parse(body: &str) -> Result<Vec<StreamEvent>, XmlError> {
    parse_chunked(format!("{HEADER}{body}").as_bytes(), 1, Limits::default())
}

fn elements(evs: &[StreamEvent]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            StreamEvent::Element(el) => Some(el.to_string_in("jabber:client")),
            _ => None,
        })
        .collect()
}

#[test]
fn header_then_stanzas_then_end() {
    let evs = parse(
        "<message to='bob@localhost' type='chat'><body>hi &amp; &#x263A;</body></message> \n\
         <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>",
    )
    .unwrap();
    match &evs[0] {
        StreamEvent::Header(h) => {
            assert_eq!(h.ns, "http://etherx.jabber.org/streams");
            assert_eq!(h.name, "stream");
            assert_eq!(h.attr("to"), Some("localhost"));
            assert_eq!(h.attr("xml:lang"), Some("en"));
        }
        other => panic!("expected header, got {other:?}"),
    }
    assert_eq!(
        elements(&evs),
        vec![
            "<message to='bob@localhost' type='chat'><body>hi &amp; \u{263A}</body></message>",
            "<iq id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        ]
    );
    assert!(matches!(evs.last(), Some(StreamEvent::End)));
}

#[test]
fn every_split_point_gives_the_same_result() {
    let input = format!(
        "{HEADER}<message xmlns:x='urn:x' to='a@b/c'><body>caf\u{e9} \u{1F600}</body><x:y x:z='1'/></message>"
    );
    let whole = elements(&parse_chunked(input.as_bytes(), input.len(), Limits::default()).unwrap());
    assert_eq!(whole.len(), 1);
    for split in 1..input.len() {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        for piece in [&input.as_bytes()[..split], &input.as_bytes()[split..]] {
            let mut rest = piece;
            while let Some(ev) = p.next(&mut rest).unwrap() {
                out.push(ev);
            }
        }
        assert_eq!(elements(&out), whole, "split at byte {split}");
    }
}

#[test]
fn prefixed_stanza_namespace_resolves() {
    let input = "<?xml version='1.0'?><s:stream xmlns:s='http://etherx.jabber.org/streams' \
        xmlns:c='jabber:client' version='1.0'><c:message to='x@y'/>";
    let evs = parse_chunked(input.as_bytes(), 3, Limits::default()).unwrap();
    let StreamEvent::Element(el) = &evs[1] else {
        panic!("{evs:?}")
    };
    assert!(el.is("message", "jabber:client"));
}

#[test]
fn dtd_and_entities_are_refused() {
    let input = "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'lol'>]><stream:stream \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    assert!(matches!(
        parse_chunked(input.as_bytes(), 1, Limits::default()),
        Err(XmlError::Restricted(_))
    ));
    assert!(matches!(
        parse("<message><body>&x;</body></message>"),
        Err(XmlError::Restricted(_))
    ));
}

#[test]
fn comments_and_processing_instructions_are_refused() {
    assert!(matches!(parse("<!-- hi -->"), Err(XmlError::Restricted(_))));
    assert!(matches!(parse("<?foo bar?>"), Err(XmlError::Restricted(_))));
}

#[test]
fn malformed_input_is_refused() {
    for bad in [
        "<message></iq>",
        "<message a='1' a='2'/>",
        "<message a=1/>",
        "<message a='<'/>",
        "<1message/>",
        "<message>\u{1}</message>",
        "<message>]]></message>",
        "<message><body>&#0;</body></message>",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        parse("<foo:message/>").unwrap_err(),
        XmlError::BadNamespacePrefix
    );
    assert_eq!(parse("hello<message/>").unwrap_err(), XmlError::BadFormat);
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    assert_eq!(
        parse_chunked(&bytes, 1, Limits::default()).unwrap_err(),
        XmlError::UnsupportedEncoding
    );
}

#[test]
fn foreign_encodings_and_versions_are_refused() {
    for decl in [
        "<?xml version='1.0' encoding='ISO-8859-1'?>",
        "<?xml version='1.1'?>",
    ] {
        let input =
            format!("{decl}<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
        assert!(
            parse_chunked(input.as_bytes(), 1, Limits::default()).is_err(),
            "accepted {decl}"
        );
    }
}

#[test]
fn oversized_element_is_a_policy_violation() {
    let limits = Limits {
        max_stanza_size: 4096,
        max_tag_size: 1024,
        ..Limits::default()
    };
    let body = "a".repeat(10_000);
    let input = format!("{HEADER}<message><body>{body}</body></message>");
    assert!(matches!(
        parse_chunked(input.as_bytes(), 512, limits),
        Err(XmlError::PolicyViolation(_))
    ));
    // Whitespace keepalives between stanzas do not count toward any element.
    let input = format!("{HEADER}{}<message/>", " ".repeat(20_000));
    assert_eq!(
        elements(&parse_chunked(input.as_bytes(), 512, limits).unwrap()).len(),
        1
    );
    // Many small stanzas are fine: the budget is per element.
    let input = format!(
        "{HEADER}{}",
        "<message><body>x</body></message>".repeat(500)
    );
    assert_eq!(
        elements(&parse_chunked(input.as_bytes(), 100, limits).unwrap()).len(),
        500
    );
}

#[test]
fn deep_nesting_is_a_policy_violation() {
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(parse(&deep), Err(XmlError::PolicyViolation(_))));
    let ok = format!("{}{}", "<a>".repeat(10), "</a>".repeat(10));
    assert!(parse(&ok).is_ok());
}

#[test]
fn nothing_is_parsed_after_the_stream_ends() {
    let mut p = StreamParser::new(Limits::default());
    let input = format!("{HEADER}</stream:stream><message/>");
    let mut rest = input.as_bytes();
    assert!(matches!(
        p.next(&mut rest),
        Ok(Some(StreamEvent::Header(_)))
    ));
    assert!(matches!(p.next(&mut rest), Ok(Some(StreamEvent::End))));
    assert!(matches!(p.next(&mut rest), Ok(None)));
}

/// Parses `input` in chunks and says how many bytes had been fed when the first error came.
fn fed_until_error(input: &[u8], chunk: usize, limits: Limits) -> Option<(usize, XmlError)> {
    let mut p = StreamParser::new(limits);
    let mut fed = 0;
    for piece in input.chunks(chunk) {
        fed += piece.len();
        let mut rest = piece;
        loop {
            match p.next(&mut rest) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => return Some((fed, e)),
            }
        }
    }
    None
}

#[test]
fn a_long_namespace_is_held_once_and_many_empty_elements_hit_the_memory_budget() {
    // The shape measured in the hardening issue: one default namespace of 16 KiB, then tens of
    // thousands of 4-byte children, within the 256 KiB byte budget.
    let ns = format!("urn:{}", "x".repeat(12 * 1024));
    let input = format!("{HEADER}<iq xmlns='{ns}'>{}</iq>", "<a/>".repeat(60_000));
    assert!(input.len() < Limits::default().max_stanza_size + HEADER.len());
    let (fed, err) = fed_until_error(input.as_bytes(), 4096, Limits::default())
        .expect("60,000 empty elements must not be built");
    assert!(
        matches!(err, XmlError::PolicyViolation(ref why) if why.contains("memory")),
        "{err:?}"
    );
    // Stopped well before the end, once the tree reached the memory budget.
    assert!(fed < input.len() / 2, "fed {fed} of {}", input.len());

    // Within the budget, children share their parent's namespace string.
    let input = format!("{HEADER}<iq xmlns='{ns}'><a/><b/></iq>");
    let evs = parse_chunked(input.as_bytes(), 4096, Limits::default()).unwrap();
    let Some(StreamEvent::Element(iq)) = evs.get(1) else {
        panic!("expected the element, got {evs:?}");
    };
    let kids: Vec<&Element> = iq.children().collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(iq.ns().as_ptr(), kids[0].ns().as_ptr());
    assert_eq!(kids[0].ns().as_ptr(), kids[1].ns().as_ptr());
}

#[test]
fn namespaced_attributes_count_toward_the_memory_budget() {
    // Each attribute key names its namespace: a long prefixed namespace on many small
    // elements would otherwise be copied into each of them.
    let ns = format!("urn:{}", "y".repeat(8 * 1024));
    let input = format!(
        "{HEADER}<iq xmlns:p='{ns}'>{}</iq>",
        "<b p:x=''/>".repeat(20_000)
    );
    let (_, err) = fed_until_error(input.as_bytes(), 4096, Limits::default())
        .expect("the copies must be bounded");
    assert!(
        matches!(err, XmlError::PolicyViolation(ref why) if why.contains("memory")),
        "{err:?}"
    );
}

#[test]
fn an_unfinished_start_tag_is_bounded_while_it_is_read() {
    // A start tag that never closes, with ever more attributes: refused once it passes
    // max_tag_size, not after it closes (rxml would collect it all first).
    let limits = Limits::default();
    let attrs: String = (0..40_000).map(|i| format!(" a{i}=''")).collect();
    let input = format!("{HEADER}<message{attrs}");
    let (fed, err) = fed_until_error(input.as_bytes(), 1500, limits).expect("refused");
    assert!(
        matches!(err, XmlError::PolicyViolation(ref why) if why.contains("start tag")),
        "{err:?}"
    );
    assert!(
        fed <= HEADER.len() + limits.max_tag_size + 1500,
        "fed {fed} bytes before refusing"
    );
    // The same for the stream header.
    let input = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'{attrs}"
    );
    let (fed, _) = fed_until_error(input.as_bytes(), 1500, limits).expect("refused");
    assert!(fed <= limits.max_tag_size + 1500, "fed {fed}");
}

#[test]
fn too_many_attributes_are_refused() {
    let limits = Limits::default();
    let attrs: String = (0..=limits.max_attributes)
        .map(|i| format!(" a{i}='1'"))
        .collect();
    assert!(matches!(
        parse(&format!("<message{attrs}/>")),
        Err(XmlError::PolicyViolation(_))
    ));
    let attrs: String = (0..limits.max_attributes)
        .map(|i| format!(" a{i}='1'"))
        .collect();
    assert_eq!(
        elements(&parse(&format!("<message{attrs}/>")).unwrap()).len(),
        1
    );
}

#[test]
fn large_text_in_one_chunk_still_parses() {
    // Text is emitted eagerly (the unfinished-tag bound relies on it): a 200 KiB body in one
    // piece, or in odd pieces, is one text node.
    let body = "b".repeat(200 * 1024);
    let input = format!("{HEADER}<message><body>{body}</body></message>");
    for chunk in [input.len(), 7919] {
        let evs = parse_chunked(input.as_bytes(), chunk, Limits::default()).unwrap();
        let Some(StreamEvent::Element(m)) = evs.get(1) else {
            panic!("no element");
        };
        let b = m.get_child("body", "jabber:client").unwrap();
        assert_eq!(b.nodes().len(), 1);
        assert_eq!(b.text().len(), body.len());
    }
}

#[test]
fn releasing_buffers_before_the_header_keeps_the_xml_declaration_valid() {
    // A connection that stays quiet for a while before sending its header gets its buffers
    // released; the XML declaration must still be accepted afterwards.
    let mut p = StreamParser::new(Limits::default());
    p.release_temporaries();
    let mut input = HEADER.as_bytes();
    assert!(matches!(
        p.next(&mut input),
        Ok(Some(StreamEvent::Header(_)))
    ));
    // And in the middle of a start tag.
    let mut p = StreamParser::new(Limits::default());
    let (a, b) = HEADER.split_at(30);
    let mut input = a.as_bytes();
    assert!(matches!(p.next(&mut input), Ok(None)));
    p.release_temporaries();
    let mut input = b.as_bytes();
    assert!(matches!(
        p.next(&mut input),
        Ok(Some(StreamEvent::Header(_)))
    ));
}

#[test]
fn large_cdata_is_text_not_a_tag() {
    // CDATA sections are text (RFC 6120 allows them); a long one is not an unfinished tag.
    let body = "c".repeat(50 * 1024);
    let input = format!("{HEADER}<message><body><![CDATA[{body}]]></body></message>");
    for chunk in [input.len(), 1000] {
        let evs = parse_chunked(input.as_bytes(), chunk, Limits::default()).unwrap();
        let Some(StreamEvent::Element(m)) = evs.get(1) else {
            panic!("no element");
        };
        assert_eq!(m.get_child("body", "jabber:client").unwrap().text(), body);
    }
}
