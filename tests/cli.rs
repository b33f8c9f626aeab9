//! The `xmppd` command line, run as a user would: accounts and `check`.

use std::process::{Command, Output, Stdio};

fn xmppd(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xmppd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn account_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xmppd.toml");
    std::fs::write(
        &cfg,
        format!("[server]\ndata_dir = {:?}\n", dir.path().join("data")),
    )
    .unwrap();

    let o = xmppd(
        &cfg,
        &["adduser", "alice@localhost", "--password", "pw1"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    // The password may come on standard input (scripts), never echoed or stored in plain.
    let o = xmppd(&cfg, &["adduser", "Bob@LocalHost"], Some("pw2\n"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("created bob@localhost"),
        "JIDs are normalised: {}",
        text(&o)
    );
    let o = xmppd(
        &cfg,
        &["adduser", "alice@localhost", "--password", "x"],
        None,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));

    let o = xmppd(&cfg, &["listusers"], None);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "alice@localhost\nbob@localhost\n"
    );

    let o = xmppd(
        &cfg,
        &["passwd", "alice@localhost", "--password", "new"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = xmppd(
        &cfg,
        &["passwd", "carol@localhost", "--password", "new"],
        None,
    );
    assert!(!o.status.success() && text(&o).contains("does not exist"));

    let o = xmppd(&cfg, &["deluser", "bob@localhost"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = xmppd(&cfg, &["deluser", "bob@localhost"], None);
    assert!(!o.status.success());

    for bad in ["alice@example.org", "localhost", "@@@"] {
        let o = xmppd(&cfg, &["adduser", bad, "--password", "x"], None);
        assert!(!o.status.success(), "{bad} accepted");
        assert!(text(&o).starts_with("error: "), "{bad}: {}", text(&o));
    }
    let o = xmppd(&cfg, &["adduser", "dave@localhost"], Some("\n"));
    assert!(!o.status.success() && text(&o).contains("empty"));

    // No password is stored in plain: the database does not contain it.
    let db = std::fs::read(dir.path().join("data/xmppd.sqlite")).unwrap();
    let wal = std::fs::read(dir.path().join("data/xmppd.sqlite-wal")).unwrap_or_default();
    for blob in [db, wal] {
        assert!(!blob.windows(3).any(|w| w == b"pw1"));
    }
}

#[test]
fn check_reports_every_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[server]\nhosts = []\ncolour = 'blue'\n[c2s]\nmax_stanza_size = 10\nlisten = ['nowhere']\n\
         [storage]\nbackend = 'postgres'\n",
    )
    .unwrap();
    let o = xmppd(&cfg, &["check"], None);
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o);
    for key in [
        "server.hosts",
        "server.colour",
        "c2s.max_stanza_size",
        "c2s.listen[0]",
        "storage.url",
    ] {
        assert!(
            out.contains(&format!("error: {key}: ")),
            "missing {key} in:\n{out}"
        );
    }
    std::fs::write(&cfg, include_str!("../config/xmppd.toml")).unwrap();
    let o = xmppd(&cfg, &["check"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = xmppd(&dir.path().join("missing.toml"), &["check"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read"));
}
