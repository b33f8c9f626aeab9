//! SCRAM against the RFC test vectors and against an independent client (the `sasl` crate).

use super::*;
use sasl::client::Mechanism;
use sasl::client::mechanisms::Scram as ClientScram;
use sasl::common::ChannelBinding;
use sasl::common::scram::{Sha1 as CSha1, Sha256 as CSha256};

#[test]
fn rfc7677_test_vector_keys() {
    // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let c = ScramCredentials::derive(ScramHash::Sha256, "pencil", &salt, 4096);
    let mut s = ScramServer::new(ScramHash::Sha256, false, None, false);
    let first = s.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
    assert_eq!(first.username, "user");
    // Replace the random server nonce with the RFC's by driving the state by hand.
    s.state = State::SentServerFirst {
        gs2_header: "n,,".into(),
        client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
        server_first:
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .into(),
        nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        creds: c,
    };
    let fin = s
        .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        .unwrap();
    assert_eq!(fin, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

fn run_with_client(
    client: &mut dyn Mechanism,
    server: &mut ScramServer,
    creds: &ScramCredentials,
) -> Result<(), SaslFailure> {
    let first = server.client_first(&client.initial())?;
    assert_eq!(first.username, "alice");
    let sf = server.server_first(first, creds.clone());
    let cf = client.response(&sf).expect("client accepts server-first");
    let fin = server.client_final(&cf)?;
    client
        .success(&fin)
        .expect("client verifies the server signature");
    Ok(())
}

fn creds(hash: ScramHash, password: &str) -> ScramCredentials {
    ScramCredentials::derive(hash, password, b"0123456789abcdef", 4096)
}

#[test]
fn independent_client_logs_in_with_both_hashes() {
    let mut c = ClientScram::<CSha256>::new("alice", "s3cret", ChannelBinding::None).unwrap();
    let mut s = ScramServer::new(ScramHash::Sha256, false, None, false);
    run_with_client(&mut c, &mut s, &creds(ScramHash::Sha256, "s3cret")).unwrap();
    let mut c = ClientScram::<CSha1>::new("alice", "s3cret", ChannelBinding::None).unwrap();
    let mut s = ScramServer::new(ScramHash::Sha1, false, None, false);
    run_with_client(&mut c, &mut s, &creds(ScramHash::Sha1, "s3cret")).unwrap();
}

#[test]
fn wrong_password_is_not_authorized() {
    let mut c = ClientScram::<CSha256>::new("alice", "wrong", ChannelBinding::None).unwrap();
    let mut s = ScramServer::new(ScramHash::Sha256, false, None, false);
    assert_eq!(
        run_with_client(&mut c, &mut s, &creds(ScramHash::Sha256, "s3cret")),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn channel_binding_plus() {
    let cb = vec![7u8; 32];
    let mut c = ClientScram::<CSha256>::new("alice", "pw", ChannelBinding::TlsExporter(cb.clone()))
        .unwrap();
    let mut s = ScramServer::new(ScramHash::Sha256, true, Some(cb), true);
    run_with_client(&mut c, &mut s, &creds(ScramHash::Sha256, "pw")).unwrap();
    // Different binding data (a man in the middle terminating TLS) fails.
    let mut c =
        ClientScram::<CSha256>::new("alice", "pw", ChannelBinding::TlsExporter(vec![1; 32]))
            .unwrap();
    let mut s = ScramServer::new(ScramHash::Sha256, true, Some(vec![7; 32]), true);
    assert_eq!(
        run_with_client(&mut c, &mut s, &creds(ScramHash::Sha256, "pw")),
        Err(SaslFailure::NotAuthorized)
    );
}

#[test]
fn gs2_flag_rules() {
    let s = ScramServer::new(ScramHash::Sha256, false, None, true);
    // `y` while -PLUS was offered: downgrade.
    assert!(s.client_first(b"y,,n=alice,r=abc").is_err());
    // `p` with a non-PLUS mechanism.
    assert!(s.client_first(b"p=tls-exporter,,n=alice,r=abc").is_err());
    let s = ScramServer::new(ScramHash::Sha256, false, None, false);
    assert!(s.client_first(b"y,,n=alice,r=abc").is_ok());
    assert!(s.client_first(b"n,,n=alice,r=abc,m=ext").is_err());
    assert!(s.client_first(b"x,,n=alice,r=abc").is_err());
    assert_eq!(
        s.client_first(b"n,,n=a=2Cb=3Dc,r=x").unwrap().username,
        "a,b=c"
    );
    assert!(s.client_first(b"n,,n=a=zz,r=x").is_err());
    // -PLUS with an unsupported binding type.
    let s = ScramServer::new(ScramHash::Sha256, true, Some(vec![1]), true);
    assert!(s.client_first(b"p=tls-unique,,n=alice,r=abc").is_err());
    assert!(s.client_first(b"n,,n=alice,r=abc").is_err());
}

#[test]
fn plain_checks_against_stored_keys() {
    let c = ScramCredentials::new_set("pässword", 4096).unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.verify_password("pässword")));
    assert!(c.iter().all(|c| !c.verify_password("password")));
    // Each credential has its own salt.
    assert_ne!(c[0].salt, c[1].salt);
    let d = ScramCredentials::decoy(ScramHash::Sha256, "nobody", b"k");
    assert_eq!(
        d.salt,
        ScramCredentials::decoy(ScramHash::Sha256, "nobody", b"k").salt
    );
    assert!(!d.verify_password(""));
}
