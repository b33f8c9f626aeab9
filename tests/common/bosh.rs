//! A BOSH client (XEP-0124/0206) in tests: HTTP by hyper's client (written by others), one
//! connection per request so that requests can be held side by side as browsers hold them;
//! SCRAM by the `sasl` crate. Each answer is checked to be one `<body/>` document.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::WAIT;

/// `http://jabber.org/protocol/httpbind`
pub const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    /// The body as text (lossy).
    pub body: String,
    /// The body as it came.
    pub bytes: Vec<u8>,
}

/// Sends one BOSH HTTP request (to `/http-bind`) on a new connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Answer {
    let mut all = vec![("content-type", "text/xml; charset=utf-8")];
    all.extend_from_slice(headers);
    request(addr, method, "/http-bind", &all, body.into_bytes()).await
}

/// Sends one HTTP request on a new connection (hyper's client).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("no HTTP answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("the body did not come in time")
        .unwrap()
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes: bytes.to_vec(),
    }
}

/// One BOSH session.
pub struct Bosh {
    pub addr: SocketAddr,
    pub sid: String,
    /// The next rid to use.
    pub rid: u64,
}

impl Bosh {
    /// Creates a session (`wait`, `hold`); returns it and the creation answer.
    pub async fn create(addr: SocketAddr, wait: u32, hold: u32) -> (Bosh, String) {
        let rid = 1000;
        let a = post(
            addr,
            format!(
                "<body xmlns='{HTTPBIND}' rid='{rid}' to='localhost' xml:lang='en' wait='{wait}' \
                 hold='{hold}' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>"
            ),
        )
        .await;
        let sid = super::attr_of(&a, "body", "sid").unwrap_or_else(|| panic!("no sid in {a}"));
        (
            Bosh {
                addr,
                sid,
                rid: rid + 1,
            },
            a,
        )
    }

    /// The next request's `<body>` with `attrs` around `payload`; its rid is taken.
    pub fn body(&mut self, attrs: &str, payload: &str) -> String {
        let rid = self.rid;
        self.rid += 1;
        format!(
            "<body xmlns='{HTTPBIND}' rid='{rid}' sid='{}' {attrs}>{payload}</body>",
            self.sid
        )
    }

    /// Sends `payload` in the next request and waits for its answer.
    pub async fn send(&mut self, payload: &str) -> String {
        let b = self.body("", payload);
        post(self.addr, b).await
    }

    /// SCRAM-SHA-256; then the stream restart. Returns the restart's answer (features).
    pub async fn authenticate(&mut self, user: &str, password: &str) -> String {
        use sasl::client::Mechanism;
        use sasl::client::mechanisms::Scram;
        use sasl::common::ChannelBinding;
        use sasl::common::scram::Sha256;
        let mut m = Scram::<Sha256>::new(user, password, ChannelBinding::None).unwrap();
        let ch = self
            .send(&format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
                B64.encode(m.initial())
            ))
            .await;
        let resp = m
            .response(&B64.decode(super::inner_text(&ch, "challenge")).unwrap())
            .unwrap();
        let ok = self
            .send(&format!(
                "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                B64.encode(resp)
            ))
            .await;
        assert!(ok.contains("<success"), "{ok}");
        let b = self.body(
            "to='localhost' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'",
            "",
        );
        post(self.addr, b).await
    }

    /// Logs in and binds `resource`.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        resource: &str,
    ) -> (Bosh, String) {
        let (mut b, created) = Bosh::create(addr, 10, 1).await;
        assert!(created.contains("SCRAM-SHA-256"), "{created}");
        let features = b.authenticate(user, password).await;
        assert!(features.contains("xmpp-bind"), "{features}");
        let bound = b
            .send(&format!(
                "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
            ))
            .await;
        let jid = super::inner_text(&bound, "jid").to_string();
        (b, jid)
    }
}

/// POSTs a body; returns the answer's body, checked to be one `<body/>` in the right
/// namespace.
pub async fn post(addr: SocketAddr, body: String) -> String {
    let a = http(addr, "POST", &[], body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let el: minidom::Element = a
        .body
        .parse()
        .unwrap_or_else(|e| panic!("not one document ({e}): {}", a.body));
    assert!(el.is("body", HTTPBIND), "{}", a.body);
    a.body
}
