"""Gajim (Debian's package, the GTK desktop client) on a fresh profile fills its chat history
from the server's archive (XEP-0313), as a new device does, and enters a group chat from a
bookmark: olga's phone (slixmpp) and pavel chat, pavel makes a room and speaks in it, and the
phone bookmarks the room with autojoin (XEP-0402), all while Gajim has never run. Then Gajim
starts for olga on an empty profile (made with Gajim's own settings module, as its account
wizard would), connects over STARTTLS, asks the archive, reads the bookmarks and joins the
room; pavel speaks again and then kicks her. What Gajim shows in a chat window is what it
stored in its history database (logs.db): the test reads that, both directions of the
conversation with the archive's stanza ids, and the room's messages before and after it came.

Gajim runs in a virtual X display (Xvfb), as an unprivileged user, in a mount namespace whose
system CA file is the server's self-signed certificate (Gajim trusts what GnuTLS trusts)."""

import asyncio
import os
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import tempfile

import pytest
from slixmpp.xmlstream import ET

from conftest import future_of

WAIT = 20
PORT = os.environ.get("XMPPD_PORT", "5222")
CA = os.environ.get("XMPPD_CA")
HERE = os.path.dirname(os.path.abspath(__file__))

# CI (XMPPD_REQUIRE_GAJIM=1) must run it; elsewhere it is skipped without what it needs.
pytestmark = pytest.mark.skipif(
    not os.environ.get("XMPPD_REQUIRE_GAJIM")
    and not (
        shutil.which("gajim")
        and shutil.which("xvfb-run")
        and shutil.which("unshare")
        and os.geteuid() == 0
    ),
    reason="needs gajim, xvfb-run, unshare and root",
)


def history(db, contact):
    """(message, stanza_id) of the conversation with `contact` in Gajim's history."""
    if not os.path.exists(db):
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        rows = con.execute(
            "SELECT logs.message, logs.stanza_id FROM logs JOIN jids USING (jid_id) "
            "WHERE jids.jid = ? ORDER BY logs.time",
            (contact,),
        ).fetchall()
        con.close()
        return rows
    except sqlite3.Error:
        return []  # being created


def start_gajim(jid, program=("gajim",), env=()):
    """Gajim for `jid` on a fresh profile (made with Gajim's own settings module, as its
    account wizard would), in Xvfb as `nobody`, trusting the server's certificate through a
    mount namespace's system CA file. `program` is what runs Gajim (with `-c PROFILE` added);
    `env` are extra variables for it. Returns (work folder, profile, process)."""
    root = tempfile.mkdtemp(prefix="gajim-")
    profile = os.path.join(root, "profile")
    os.chmod(root, 0o755)
    shutil.chown(root, "nobody")
    as_nobody = ["runuser", "-u", "nobody", "--", "env", f"HOME={root}", *env]
    made = subprocess.run(
        as_nobody
        + ["python3", os.path.join(HERE, "gajim", "make_profile.py"), profile, jid, "pw",
           "127.0.0.1", PORT],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    ca = os.path.join(root, "ca.pem")
    shutil.copy(CA, ca)
    os.chmod(ca, 0o644)
    gajim = shlex.join(
        as_nobody
        + ["dbus-run-session", "--", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24",
           *program, "-c", profile]
    )
    with open(os.path.join(root, "gajim.log"), "w") as log:
        proc = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c",
             f"mount --bind {ca} /etc/ssl/certs/ca-certificates.crt && exec {gajim}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return root, profile, proc


def gajim_log(root):
    """The end of what Gajim printed (for a failure's message)."""
    with open(os.path.join(root, "gajim.log")) as f:
        return f.read()[-4000:]


def stop_gajim(root, proc):
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    # What Gajim printed stays after the test, for a failure's investigation.
    shutil.copy(os.path.join(root, "gajim.log"), os.path.join(tempfile.gettempdir(), "gajim-last.log"))
    shutil.rmtree(root, ignore_errors=True)

async def test_gajim_fills_a_fresh_profile_from_the_archive_and_joins_a_bookmarked_room(session):
    token = secrets.token_hex(4)
    phone = await session("olga@localhost/phone", "pw", plugins=("xep_0004", "xep_0060"))
    pavel = await session("pavel@localhost/p", "pw", plugins=("xep_0004", "xep_0045"))
    await phone.online()
    await pavel.online()
    # Both directions land in olga's archive; her phone takes pavel's message, so nothing
    # waits in offline storage: only the archive can give Gajim this conversation.
    sent = f"from olga's phone {token}"
    got = f"from pavel {token}"
    phone.xmpp.send_message(mto="pavel@localhost", mbody=sent, mtype="chat")
    while (await pavel.next_message())["body"] != sent:
        pass
    pavel.xmpp.send_message(mto="olga@localhost", mbody=got, mtype="chat")
    while (await phone.next_message())["body"] != got:
        pass
    # pavel's room, where he speaks before olga comes; her phone bookmarks it with autojoin.
    room = f"gajim-{token}@conference.localhost"
    muc = pavel.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(room, "Pavel", timeout=WAIT)
    await muc.set_room_config(room, await muc.get_room_config(room))
    before = f"before olga came {token}"
    pavel.xmpp.send_message(mto=room, mbody=before, mtype="groupchat")
    mark = ET.Element("{urn:xmpp:bookmarks:1}conference", {"name": "Gajim's room", "autojoin": "true"})
    ET.SubElement(mark, "{urn:xmpp:bookmarks:1}nick").text = "Olga"
    form = phone.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for name, value in {"access_model": "whitelist", "persist_items": "true", "max_items": "max"}.items():
        form.add_field(var=f"pubsub#{name}", value=value)
    await phone.xmpp.plugin["xep_0060"].publish(
        None, "urn:xmpp:bookmarks:1", id=room, payload=mark, options=form, timeout=WAIT)
    await phone.stop()
    olga_in = future_of(pavel.xmpp, f"muc::{room}::got_online", lambda p: p["muc"]["nick"] == "Olga")

    root, profile, proc = start_gajim("olga@localhost")
    try:
        db = os.path.join(profile, "logs.db")
        # Gajim enters the bookmarked room; pavel speaks while she is there.
        try:
            await asyncio.wait_for(olga_in, 60)
        except asyncio.TimeoutError:
            raise AssertionError("Gajim did not join the room\n" + gajim_log(root))
        during = f"while olga is here {token}"
        pavel.xmpp.send_message(mto=room, mbody=during, mtype="groupchat")
        rows = []
        for _ in range(60 * 4):
            rows = history(db, "pavel@localhost")
            if {sent, got} <= {r[0] for r in rows}:
                break
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.25)
        shown = {r[0]: r[1] for r in rows}
        assert sent in shown and got in shown, f"Gajim's history: {rows}\n" + gajim_log(root)
        # Filled from the archive: each message has the archive's id (XEP-0359 stanza-id).
        assert shown[sent] and shown[got], rows
        # The room: what was said before she came (the room's history) and while she is there.
        said = []
        for _ in range(30 * 4):
            said = [r[0] for r in history(db, room)]
            if before in said and during in said:
                break
            await asyncio.sleep(0.25)
        assert before in said and during in said, said
        # pavel (the room's owner) kicks her: she leaves with status 307.
        kicked = future_of(pavel.xmpp, f"muc::{room}::got_offline", lambda p: p["muc"]["nick"] == "Olga")
        await muc.set_role(room, "Olga", "none", reason="bye")
        gone = await asyncio.wait_for(kicked, WAIT)
        assert 307 in gone["muc"]["status_codes"], gone
    finally:
        stop_gajim(root, proc)


async def test_gajim_creates_a_members_only_room_invites_chats_and_kicks(session):
    """Gajim (peggy) makes a new room through its own group chat module (compliance/gajim/
    drive.py says why not through its windows): members-only, quinn invited (made a member,
    then a direct invitation), a conversation both ways, quinn kicked. A stranger (rupert)
    is refused, which shows the room took the configuration Gajim sent."""
    token = secrets.token_hex(4)
    room = f"made-in-gajim-{token}@conference.localhost"
    say, answer = f"welcome quinn {token}", f"thanks peggy {token}"
    quinn = await session("quinn@localhost/q", "pw", plugins=("xep_0045", "xep_0249"))
    await quinn.online()
    invited = future_of(quinn.xmpp, "groupchat_direct_invite",
                        lambda m: str(m["groupchat_invite"]["jid"]) == room)
    driver = ["python3", os.path.join(HERE, "gajim", "drive.py"), "--verbose"]
    env = [f"GAJIM_ROOM={room}", "GAJIM_GUEST=quinn@localhost", "GAJIM_GUEST_NICK=Quinn",
           f"GAJIM_SAY={say}", f"GAJIM_KICK_AFTER={answer}"]
    root, profile, proc = start_gajim("peggy@localhost", driver, env)
    try:
        try:
            await asyncio.wait_for(invited, 60)
        except asyncio.TimeoutError:
            raise AssertionError("no invitation from Gajim\n" + gajim_log(root))
        muc = quinn.xmpp.plugin["xep_0045"]
        heard = future_of(quinn.xmpp, "groupchat_message", lambda m: m["body"] == say)
        await muc.join_muc_wait(room, "Quinn", timeout=WAIT)
        # The room as Gajim configured it: members-only, quinn a member, peggy the owner.
        info = await quinn.xmpp.plugin["xep_0030"].get_info(jid=room, timeout=WAIT)
        assert "muc_membersonly" in info["disco_info"]["features"], info
        assert muc.get_jid_property(room, "Quinn", "affiliation") == "member"
        said = await asyncio.wait_for(heard, WAIT)
        assert said["from"].resource and said["mucnick"], said
        stranger = await session("rupert@localhost/r", "pw", plugins=("xep_0045",))
        with pytest.raises(Exception) as refused:
            await stranger.xmpp.plugin["xep_0045"].join_muc_wait(room, "Rupert", timeout=WAIT)
        why = getattr(refused.value, "condition", str(refused.value))
        assert why == "registration-required", refused.value
        kicked = future_of(quinn.xmpp, f"muc::{room}::got_offline",
                           lambda p: p["muc"]["nick"] == "Quinn")
        quinn.xmpp.send_message(mto=room, mbody=answer, mtype="groupchat")
        try:
            gone = await asyncio.wait_for(kicked, WAIT)
        except asyncio.TimeoutError:
            raise AssertionError("Gajim did not kick\n" + gajim_log(root))
        assert 307 in gone["muc"]["status_codes"], gone
        # Gajim showed both sides of the conversation: its history database holds them.
        db = os.path.join(profile, "logs.db")
        rows = []
        for _ in range(WAIT * 4):
            rows = [r[0] for r in history(db, room)]
            if say in rows and answer in rows:
                break
            await asyncio.sleep(0.25)
        assert say in rows and answer in rows, rows
    finally:
        stop_gajim(root, proc)
