//! The PEP store's part of the conformance suite (`conformance.rs` runs it on every backend):
//! nodes and their configuration, publishing (replacing an id, trimming to max_items),
//! items by count and id, retract, purge, the last item of each node, bytes, deletion.

use super::Storage;
use super::pep::{Access, NodeConfig, PepItem};
use crate::stream::random_id;

fn item(id: &str, body: &str) -> PepItem {
    PepItem {
        id: id.into(),
        publisher: "u@h/r".into(),
        ts_ms: 1,
        xml: format!("<x xmlns='urn:t'>{body}</x>"),
    }
}

pub(super) async fn pep_conformance(s: &Storage) {
    let host = format!("{}.test", random_id().to_lowercase());
    let p = s.pep.as_ref();
    let c = NodeConfig {
        access: Access::Presence,
        persist_items: true,
        max_items: 3,
        notify_retract: true,
    };
    assert_eq!(p.node(&host, "u", "n").await.unwrap(), None);
    p.save_node(&host, "u", "n", &c).await.unwrap();
    p.save_node(
        &host,
        "u",
        "m",
        &NodeConfig {
            access: Access::Whitelist,
            ..c
        },
    )
    .await
    .unwrap();
    assert_eq!(p.node(&host, "u", "n").await.unwrap(), Some(c));
    assert_eq!(p.nodes(&host, "u").await.unwrap(), ["m", "n"]);

    let ids = |v: Vec<PepItem>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    for i in ["a", "b", "c", "d"] {
        p.publish(&host, "u", "n", &item(i, i), 3).await.unwrap();
    }
    assert_eq!(
        ids(p.items(&host, "u", "n", 10, &[]).await.unwrap()),
        ["b", "c", "d"]
    );
    // Publishing an id again replaces it and makes it the newest.
    p.publish(&host, "u", "n", &item("b", "B"), 3)
        .await
        .unwrap();
    let all = p.items(&host, "u", "n", 10, &[]).await.unwrap();
    assert_eq!(ids(all.clone()), ["c", "d", "b"]);
    assert!(all[2].xml.contains(">B<"));
    assert_eq!(ids(p.items(&host, "u", "n", 1, &[]).await.unwrap()), ["b"]);
    assert_eq!(
        ids(p.items(&host, "u", "n", 10, &["c".into()]).await.unwrap()),
        ["c"]
    );
    p.publish(&host, "u", "m", &item("x", "x"), 1)
        .await
        .unwrap();
    let last = p.last_items(&host, "u").await.unwrap();
    let last: Vec<(String, String)> = last.into_iter().map(|(n, _, i)| (n, i.id)).collect();
    assert_eq!(
        last,
        [("m".to_string(), "x".to_string()), ("n".into(), "b".into())]
    );
    let bytes = p.bytes(&host, "u").await.unwrap();
    assert_eq!(bytes as usize, 4 * "<x xmlns='urn:t'>c</x>".len());

    assert!(p.retract(&host, "u", "n", "c").await.unwrap());
    assert!(!p.retract(&host, "u", "n", "c").await.unwrap());
    // A smaller max_items trims at once.
    p.save_node(&host, "u", "n", &NodeConfig { max_items: 1, ..c })
        .await
        .unwrap();
    assert_eq!(ids(p.items(&host, "u", "n", 10, &[]).await.unwrap()), ["b"]);
    assert_eq!(p.purge(&host, "u", "n").await.unwrap(), 1);
    assert!(p.delete_node(&host, "u", "n").await.unwrap());
    assert!(!p.delete_node(&host, "u", "n").await.unwrap());
    assert_eq!(p.nodes(&host, "u").await.unwrap(), ["m"]);
    // The account's deletion takes its nodes.
    s.accounts.delete(&host, "u").await.unwrap();
    assert!(p.nodes(&host, "u").await.unwrap().is_empty());
}
