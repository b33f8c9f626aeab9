"""Message archive (XEP-0313) with slixmpp's xep_0313 plugin: the ids a recipient is given
(XEP-0359) name its archived messages; the archive is paged forwards and backwards with RSM,
filtered by JID; a room's archive answers on the room's JID."""

import asyncio

WAIT = 20
ROOM = "archive-room@conference.localhost"


async def mam_session(session, jid):
    s = await session(jid, "pw")
    for p in ("xep_0059", "xep_0297", "xep_0313", "xep_0359", "xep_0045", "xep_0004"):
        s.xmpp.register_plugin(p)
    await s.online()
    return s


async def test_archive_ids_paging_and_rooms(session):
    peggy = await mam_session(session, "peggy@localhost/p")
    quinn = await mam_session(session, "quinn@localhost/q")

    # The account advertises the archive.
    info = await quinn.xmpp.plugin["xep_0030"].get_info(jid="quinn@localhost", timeout=WAIT)
    assert "urn:xmpp:mam:2" in info["disco_info"]["features"]

    ids = []
    for i in range(9):
        peggy.xmpp.send_message(mto="quinn@localhost", mbody=f"n{i}", mtype="chat")
        m = await quinn.next_message()
        assert m["body"] == f"n{i}"
        sid = m["stanza_id"]
        assert sid["by"] == "quinn@localhost", str(m)
        ids.append(sid["id"])

    mam = quinn.xmpp.plugin["xep_0313"]
    # Forwards in pages of 4, through XEP-0059 iteration.
    got = [m async for m in mam.iterate(rsm={"max": 4})]
    assert [r["mam_result"]["forwarded"]["stanza"]["body"] for r in got] == [f"n{i}" for i in range(9)]
    assert [r["mam_result"]["id"] for r in got] == ids
    # Backwards: the newest first.
    back = [m async for m in mam.iterate(rsm={"max": 4}, reverse=True)]
    assert [r["mam_result"]["forwarded"]["stanza"]["body"] for r in back] == [f"n{i}" for i in reversed(range(9))]
    # Filtered by the other party, on the sender's side.
    sent = await peggy.xmpp.plugin["xep_0313"].retrieve(with_jid="quinn@localhost", timeout=WAIT)
    assert len(sent["mam"]["results"]) == 9
    assert sent["mam_fin"]["complete"] in ("true", True)

    # A room: its archive answers on the room's JID.
    muc = peggy.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(ROOM, "Peggy", timeout=WAIT)
    form = await muc.get_room_config(ROOM)
    await muc.set_room_config(ROOM, form)
    echoed = asyncio.get_running_loop().create_future()
    peggy.xmpp.add_event_handler(
        "groupchat_message",
        lambda m: m["body"] == "r2" and not echoed.done() and echoed.set_result(m))
    for text in ("r1", "r2"):
        peggy.xmpp.send_message(mto=ROOM, mbody=text, mtype="groupchat")
    # Stored before it is sent: once the echo is back, the archive has it.
    await asyncio.wait_for(echoed, WAIT)
    room = await quinn.xmpp.plugin["xep_0313"].retrieve(jid=ROOM, timeout=WAIT)
    bodies = [r["mam_result"]["forwarded"]["stanza"]["body"] for r in room["mam"]["results"]]
    assert bodies == ["r1", "r2"], bodies
