//! One conformance suite for every backend: SQLite always, PostgreSQL when
//! `XMPPD_TEST_POSTGRES_URL` is set (`.ci/run` starts a server and sets it).

use super::*;
use crate::stream::random_id;
use crate::stream::sasl::scram::{ScramCredentials, ScramHash};

async fn account_store_conformance(s: &Storage) {
    // A fresh host per run, so a shared PostgreSQL database needs no cleaning.
    let host = format!("{}.test", random_id().to_lowercase());
    let a = s.accounts.as_ref();
    let creds = ScramCredentials::new_set("pw1", 4096).unwrap();
    assert!(a.create(&host, "alice", &creds).await.unwrap());
    assert!(
        !a.create(&host, "alice", &creds).await.unwrap(),
        "duplicate create"
    );
    assert!(a.create(&host, "bob", &creds).await.unwrap());
    assert!(a.exists(&host, "alice").await.unwrap());
    assert!(!a.exists(&host, "carol").await.unwrap());
    assert!(!a.exists("other.test", "alice").await.unwrap());
    assert_eq!(a.list(&host).await.unwrap(), vec!["alice", "bob"]);

    for hash in ScramHash::ALL {
        let got = a.credentials(&host, "alice", hash).await.unwrap().unwrap();
        assert_eq!(got.hash, hash);
        assert!(got.verify_password("pw1"));
        assert_eq!(got, creds.iter().find(|c| c.hash == hash).unwrap().clone());
    }
    let new = ScramCredentials::new_set("pw2", 4096).unwrap();
    assert!(a.set_credentials(&host, "alice", &new).await.unwrap());
    assert!(!a.set_credentials(&host, "nobody", &new).await.unwrap());
    let got = a
        .credentials(&host, "alice", ScramHash::Sha256)
        .await
        .unwrap()
        .unwrap();
    assert!(got.verify_password("pw2") && !got.verify_password("pw1"));

    assert!(a.delete(&host, "alice").await.unwrap());
    assert!(!a.delete(&host, "alice").await.unwrap());
    assert!(
        a.credentials(&host, "alice", ScramHash::Sha1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(a.list(&host).await.unwrap(), vec!["bob"]);
}

#[tokio::test]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.sqlite").display());
    let s = sqlite::open(&url, 2).await.unwrap();
    account_store_conformance(&s).await;
    // Re-opening applies no migration twice and keeps the data.
    drop(s);
    let s = sqlite::open(&url, 2).await.unwrap();
    assert!(s.accounts.list("x.test").await.unwrap().is_empty());
}

#[tokio::test]
async fn postgres_conformance() {
    let Ok(url) = std::env::var("XMPPD_TEST_POSTGRES_URL") else {
        eprintln!("XMPPD_TEST_POSTGRES_URL not set: PostgreSQL conformance not run");
        return;
    };
    let s = postgres::open(&url, 2).await.unwrap();
    account_store_conformance(&s).await;
}
