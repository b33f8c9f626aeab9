//! The registry's unit tests.
use super::*;

fn jid(s: &str) -> FullJid {
    FullJid::new(s).unwrap()
}

#[test]
fn module_flags_are_bits_of_their_own() {
    let (a, b) = (Flag::named("test-a"), Flag::named("test-b"));
    assert_eq!(a, Flag::named("test-a"));
    assert!(a != b && a != Flag::ACKS && b != Flag::ACKS);
    let r = Registry::new();
    let (tx, _rx) = crate::session::queue::inbox(4, 1 << 20);
    let BindOutcome::Bound { handle, .. } = r.bind(jid("u@h/r"), tx, ResourceConflict::KickOld)
    else {
        panic!()
    };
    r.set_flag(&handle.jid, handle.id, a, true);
    let info = r.info(&handle.jid).unwrap();
    assert!(info.has(a) && !info.has(b));
    assert_eq!(r.flagged("u@h", a, &[]).len(), 1);
    assert!(r.flagged("u@h", a, &[handle.id]).is_empty());
    r.set_flag(&handle.jid, handle.id, a, false);
    assert!(!r.info(&handle.jid).unwrap().has(a));
}

#[test]
fn conflict_policies() {
    let r = Registry::new();
    let (tx, _rx) = crate::session::queue::inbox(4, 1 << 20);
    let BindOutcome::Bound { handle: a, .. } =
        r.bind(jid("u@h/r"), tx.clone(), ResourceConflict::KickOld)
    else {
        panic!()
    };
    assert!(matches!(
        r.bind(jid("u@h/r"), tx.clone(), ResourceConflict::Refuse),
        BindOutcome::Conflict
    ));
    let BindOutcome::Bound { handle: c, .. } =
        r.bind(jid("u@h/r"), tx.clone(), ResourceConflict::Random)
    else {
        panic!()
    };
    assert_ne!(c.jid, a.jid);
    let BindOutcome::Bound {
        handle: b,
        replaced,
    } = r.bind(jid("u@h/r"), tx, ResourceConflict::KickOld)
    else {
        panic!()
    };
    assert_eq!(replaced.unwrap().id, a.id);
    assert_eq!(r.get(&jid("u@h/r")).unwrap().id, b.id);
    assert_eq!(r.len(), 2);
    // The kicked session's late unbind must not remove its successor.
    r.unbind(&jid("u@h/r"), a.id);
    assert_eq!(r.get(&jid("u@h/r")).unwrap().id, b.id);
}

#[test]
fn availability_and_priority() {
    let r = Registry::new();
    let (tx, _rx) = crate::session::queue::inbox(4, 1 << 20);
    let BindOutcome::Bound { handle: a, .. } =
        r.bind(jid("u@h/a"), tx.clone(), ResourceConflict::KickOld)
    else {
        panic!()
    };
    let BindOutcome::Bound { handle: b, .. } = r.bind(jid("u@h/b"), tx, ResourceConflict::KickOld)
    else {
        panic!()
    };
    let bare = a.jid.to_bare();
    assert!(r.available(&bare).is_empty());
    let p = Element::new("presence", "jabber:client");
    assert_eq!(r.set_presence(&a.jid, a.id, Some(p.clone()), 5), None);
    assert_eq!(
        r.set_presence(&a.jid, a.id, Some(p.clone()), 5),
        Some(5),
        "an update, not initial"
    );
    r.set_presence(&b.jid, b.id, Some(p), -1);
    let av = r.available(&bare);
    assert_eq!(av.len(), 1);
    assert_eq!(av[0].0.id, a.id);
}
