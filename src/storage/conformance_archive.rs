//! The archive store's part of the conformance suite (`conformance.rs` runs it on every
//! backend): appends, every filter and page direction, unknown ids, bounds, preferences,
//! retention, account deletion, and the group-commit writer in front of it.

use std::sync::Arc;

use super::Storage;
use super::archive::{ArchiveEntry, ArchiveQuery, ArchiveStore, Mode, Owner, Page, Prefs};
use super::archive_writer::Batched;
use crate::stream::random_id;

fn entry(host: &str, user: &str, with: &str, ts_ms: i64, body: &str) -> ArchiveEntry {
    ArchiveEntry {
        host: host.into(),
        user: user.into(),
        id: 0,
        with: with.into(),
        ts_ms,
        outgoing: false,
        xml: format!("<message><body>{body}</body></message>"),
        inbox: false,
    }
}

fn q(page: Page, max: usize) -> ArchiveQuery {
    ArchiveQuery::page(page, max)
}

async fn bodies(
    a: &dyn ArchiveStore,
    owner: Owner<'_>,
    query: &ArchiveQuery,
) -> (Vec<String>, bool) {
    let p = a.query(owner, query).await.unwrap().expect("ids known");
    let b = p
        .items
        .iter()
        .map(|m| {
            m.xml
                .replace("<message><body>", "")
                .replace("</body></message>", "")
        })
        .collect();
    (b, p.complete)
}

pub(super) async fn archive_conformance(s: &Storage) {
    // A fresh host per run, so a shared PostgreSQL database needs no cleaning.
    let host = format!("{}.test", random_id().to_lowercase());
    let a = s.archive.as_ref();
    // Six messages an hour apart, ten hours ago, after an older one of another account. (Ids
    // follow the commits, which in the server come at the messages' times: so here too.)
    const H: i64 = 3_600_000;
    let base = super::now_ms() - 10 * H;
    a.append(&mut [entry(&host, "other", "x@y", base - H, "theirs")])
        .await
        .unwrap();
    let mut es: Vec<ArchiveEntry> = (0..6)
        .map(|i| {
            let with = if i % 2 == 0 { "x@y" } else { "z@y" };
            entry(&host, "u", with, base + H * i, &format!("m{i}"))
        })
        .collect();
    a.append(&mut es).await.unwrap();
    // Ids are given at commit, increasing, from the time.
    assert!(es.windows(2).all(|w| w[0].id < w[1].id), "{es:?}");
    assert!(es[5].id >= (base + 5 * H) << super::archive::ID_SHIFT);
    let sid = |i: usize| es[i].id.to_string();
    let me = Owner::Account(&host, "u");

    assert_eq!(
        bodies(a, me, &q(Page::After(None), 10)).await,
        ((0..6).map(|i| format!("m{i}")).collect(), true)
    );
    let mut f = q(Page::After(None), 10);
    f.with = Some("x@y".into());
    assert_eq!(bodies(a, me, &f).await.0, ["m0", "m2", "m4"]);
    let mut f = q(Page::After(None), 10);
    f.start_ms = Some(base + H);
    f.end_ms = Some(base + 3 * H);
    assert_eq!(bodies(a, me, &f).await.0, ["m1", "m2", "m3"]);
    assert_eq!(
        bodies(a, me, &q(Page::After(Some(sid(1))), 2)).await,
        (vec!["m2".to_string(), "m3".to_string()], false)
    );
    assert_eq!(
        bodies(a, me, &q(Page::Before(None), 2)).await,
        (vec!["m4".to_string(), "m5".to_string()], false)
    );
    assert_eq!(
        bodies(a, me, &q(Page::Before(Some(sid(2))), 5)).await,
        (vec!["m0".to_string(), "m1".to_string()], true)
    );
    let mut f = q(Page::After(None), 10);
    f.after_id = Some(sid(0));
    f.before_id = Some(sid(3));
    assert_eq!(bodies(a, me, &f).await.0, ["m1", "m2"]);
    let mut f = q(Page::After(None), 10);
    f.ids = vec![sid(4), sid(1)];
    assert_eq!(bodies(a, me, &f).await.0, ["m1", "m4"]);
    // Another account's id is unknown here.
    let mut f = q(Page::After(None), 10);
    f.after_id = Some("nope".into());
    assert_eq!(a.query(me, &f).await.unwrap(), None);
    assert!(a.contains(me, &sid(0)).await.unwrap());
    assert!(
        !a.contains(Owner::Account(&host, "other"), &sid(0))
            .await
            .unwrap()
    );
    let (first, last) = a.bounds(me).await.unwrap().unwrap();
    assert_eq!((first.stanza_id, last.ts_ms), (sid(0), base + 5 * H));
    assert_eq!(a.bounds(Owner::Account(&host, "none")).await.unwrap(), None);

    // Preferences.
    assert_eq!(a.prefs(&host, "u").await.unwrap(), None);
    let p = Prefs {
        default: Mode::Roster,
        always: vec!["a@b".into(), "c@d".into()],
        never: vec![],
    };
    a.set_prefs(&host, "u", &p).await.unwrap();
    assert_eq!(a.prefs(&host, "u").await.unwrap(), Some(p));

    // Retention: older than base + 1.5 h go (m0, m1, and "theirs"); then each archive keeps 2.
    let gone = a.purge(base + 3 * H / 2, 0).await.unwrap();
    assert!(gone >= 3, "{gone}");
    assert_eq!(
        bodies(a, me, &q(Page::After(None), 10)).await.0,
        ["m2", "m3", "m4", "m5"]
    );
    a.purge(0, 2).await.unwrap();
    assert_eq!(
        bodies(a, me, &q(Page::After(None), 10)).await.0,
        ["m4", "m5"]
    );

    // The group-commit writer: concurrent appends all land, each once.
    let batched = Arc::new(Batched::new(s.archive.clone(), 16, 8, 100));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let b = batched.clone();
        let e = entry(&host, "w", "x@y", 10_000 + i, &format!("w{i}"));
        tasks.push(tokio::spawn(async move { b.append(&mut [e]).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (got, complete) = bodies(
        batched.as_ref(),
        Owner::Account(&host, "w"),
        &q(Page::After(None), 100),
    )
    .await;
    assert!(complete);
    assert_eq!(got.len(), 40);
    let unique: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 40);
    // Its preference cache follows writes.
    let p2 = Prefs {
        default: Mode::Never,
        always: vec![],
        never: vec!["e@f".into()],
    };
    assert_eq!(batched.prefs(&host, "w").await.unwrap(), None);
    batched.set_prefs(&host, "w", &p2).await.unwrap();
    assert_eq!(batched.prefs(&host, "w").await.unwrap(), Some(p2));
    // An account deleted and made again does not inherit them from the cache.
    s.accounts.delete(&host, "w").await.unwrap();
    batched.forget(&host, "w");
    assert_eq!(batched.prefs(&host, "w").await.unwrap(), None);

    // Deleting the account deletes its archive and preferences.
    s.accounts.delete(&host, "u").await.unwrap();
    assert_eq!(a.prefs(&host, "u").await.unwrap(), None);
    assert_eq!(a.bounds(me).await.unwrap(), None);
}
