//! A raw SCRAM login attempt, for the tests of authentication limits.

use super::{HEADER, Raw, inner_text};

impl Raw {
    /// One PLAIN-free login attempt with SCRAM-SHA-256 (plain TCP); returns what the server
    /// answered to the final message (`<success…>` or `<failure…>`).
    pub async fn login_attempt(&mut self, user: &str, password: &str) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD as B64;
        use sasl::client::Mechanism;
        use sasl::client::mechanisms::Scram;
        use sasl::common::ChannelBinding;
        use sasl::common::scram::Sha256;
        self.send(HEADER).await;
        self.read_until("</stream:features>").await;
        let mut m = Scram::<Sha256>::new(user, password, ChannelBinding::None).unwrap();
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{}</auth>",
            B64.encode(m.initial())
        ))
        .await;
        let ch = self.read_until("</").await;
        if ch.contains("<failure") {
            return ch;
        }
        let resp = m
            .response(&B64.decode(inner_text(&ch, "challenge")).unwrap())
            .unwrap();
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(resp)
        ))
        .await;
        self.read_until("</").await
    }
}
