"""Group chat (XEP-0045) with slixmpp's xep_0045 plugin: a room created and configured, an
invitation, messages, a nick change, a kick, and the history a later occupant gets."""

import asyncio

from conftest import future_of

WAIT = 20
ROOM = "lounge@conference.localhost"


async def muc_session(session, jid):
    s = await session(jid, "pw")
    s.xmpp.register_plugin("xep_0045")
    s.xmpp.register_plugin("xep_0004")
    await s.online()
    return s




async def test_create_invite_chat_rename_kick(session):
    mallory = await muc_session(session, "mallory@localhost/m")
    nina = await muc_session(session, "nina@localhost/n")
    oscar = await muc_session(session, "oscar@localhost/o")
    muc = mallory.xmpp.plugin["xep_0045"]

    # Created locked (201); the owner accepts the default form, which makes it usable.
    presence, _subject, _occupants, _history = await muc.join_muc_wait(ROOM, "Mallory", timeout=WAIT)
    assert 201 in presence["muc"]["status_codes"]
    assert presence["muc"]["affiliation"] == "owner"
    form = await muc.get_room_config(ROOM)
    fields = form.get_fields()
    assert "muc#roomconfig_persistentroom" in fields
    await muc.set_room_config(ROOM, form)

    # A mediated invitation reaches Nina from the room.
    invited = future_of(nina.xmpp, "groupchat_invite")
    muc.invite(ROOM, "nina@localhost", reason="come in")
    inv = await asyncio.wait_for(invited, WAIT)
    assert str(inv["from"]) == ROOM
    await nina.xmpp.plugin["xep_0045"].join_muc_wait(ROOM, "Nina", timeout=WAIT)

    # A message reaches both occupants, with the room's stanza-id.
    got = future_of(nina.xmpp, "groupchat_message", lambda m: m["body"] == "welcome")
    mallory.xmpp.send_message(mto=ROOM, mbody="welcome", mtype="groupchat")
    m = await asyncio.wait_for(got, WAIT)
    assert str(m["from"]) == f"{ROOM}/Mallory"
    assert "stanza-id" in str(m)

    # Nina renames herself; the server confirms the new nick.
    new = await nina.xmpp.plugin["xep_0045"].set_self_nick(ROOM, "Nini", timeout=WAIT)
    assert new == "Nini"

    # Oscar, later, gets the message as history.
    _, _, occupants, history = await oscar.xmpp.plugin["xep_0045"].join_muc_wait(
        ROOM, "Oscar", maxstanzas=10, timeout=WAIT)
    assert any(h["body"] == "welcome" for h in history), history
    assert "Nini" in [str(o["from"].resource) for o in occupants]

    # Mallory kicks Nina: Nina is told with 307.
    kicked = future_of(
        nina.xmpp, f"muc::{ROOM}::presence",
        lambda p: p["type"] == "unavailable" and 307 in p["muc"]["status_codes"])
    await muc.set_role(ROOM, "Nini", "none")
    p = await asyncio.wait_for(kicked, WAIT)
    assert 110 in p["muc"]["status_codes"]
