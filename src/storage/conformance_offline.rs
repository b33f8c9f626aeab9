//! Coalesced offline notifications in the conformance suite (`conformance.rs` runs it on every
//! backend): the newest of a kind replaces the one before, kinds and plain messages apart,
//! within the quota.

use super::Storage;
use super::offline::OfflineQuota;
use crate::stream::random_id;

pub(super) async fn coalesced_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let o = s.offline.as_ref();
    let q = OfflineQuota {
        messages: 4,
        bytes: 1 << 20,
    };
    assert!(
        o.store(&host, "u", "<message>plain</message>", q)
            .await
            .unwrap()
    );
    for i in 0..5 {
        let m = format!("<message>a{i}</message>");
        assert!(o.store_latest(&host, "u", "a", &m, q).await.unwrap());
    }
    assert!(
        o.store_latest(&host, "u", "b", "<message>b</message>", q)
            .await
            .unwrap()
    );
    assert_eq!(o.count(&host, "u").await.unwrap(), 3);
    // The quota counts them like any message: a fifth kind does not fit after a fourth.
    assert!(
        o.store_latest(&host, "u", "c", "<message>c</message>", q)
            .await
            .unwrap()
    );
    assert!(
        !o.store_latest(&host, "u", "d", "<message>d</message>", q)
            .await
            .unwrap()
    );
    let got: Vec<String> = o
        .take_all(&host, "u")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.stanza)
        .collect();
    assert_eq!(
        got,
        [
            "<message>plain</message>",
            "<message>a4</message>",
            "<message>b</message>",
            "<message>c</message>"
        ]
    );
}
