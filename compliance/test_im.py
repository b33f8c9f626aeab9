"""The IM core with slixmpp on both ends: roster and subscription handshake, offline delivery,
carbons, vCard. Each test uses its own accounts (run.sh creates them)."""

import asyncio

WAIT = 20


async def until(predicate, what):
    for _ in range(WAIT * 20):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_subscription_handshake_fills_both_rosters(session):
    carol = await session("carol@localhost/c", "pw")
    dave = await session("dave@localhost/d", "pw")
    for s in (carol, dave):
        await s.xmpp.get_roster()
        await s.online()
    # slixmpp answers subscription requests itself (auto_authorize, auto_subscribe).
    carol.xmpp.send_presence_subscription(pto="dave@localhost")
    await until(lambda: carol.xmpp.client_roster["dave@localhost"]["subscription"] == "both",
                "carol's item for dave to become 'both'")
    await until(lambda: dave.xmpp.client_roster["carol@localhost"]["subscription"] == "both",
                "dave's item for carol to become 'both'")
    # A fresh roster fetch agrees with the pushes.
    await carol.xmpp.get_roster()
    assert carol.xmpp.client_roster["dave@localhost"]["subscription"] == "both"
    # Presence flows: carol sees dave available.
    await until(lambda: len(carol.xmpp.client_roster["dave@localhost"].resources) > 0,
                "dave's presence at carol")


async def test_offline_message_is_delivered_with_a_delay_stamp(session):
    erin = await session("erin@localhost/e", "pw")
    erin.xmpp.send_message(mto="frank@localhost", mbody="while you were out", mtype="chat")
    # The ping is answered after the message was routed (a session's stanzas are in order).
    await erin.xmpp.plugin["xep_0199"].send_ping("localhost", timeout=WAIT)
    frank = await session("frank@localhost/f", "pw")
    await frank.online()
    msg = await frank.next_message()
    assert msg["body"] == "while you were out"
    assert str(msg["from"]) == "erin@localhost/e"
    assert msg["delay"]["stamp"] is not None


async def test_carbons_copy_messages_to_other_resources(session):
    desk = await session("grace@localhost/desk", "pw")
    desk.xmpp.register_plugin("xep_0280")
    phone = await session("grace@localhost/phone", "pw")
    heidi = await session("heidi@localhost/h", "pw")
    received = asyncio.get_running_loop().create_future()
    desk.xmpp.add_event_handler(
        "carbon_received", lambda m: received.done() or received.set_result(m))
    await desk.xmpp.plugin["xep_0280"].enable()
    heidi.xmpp.send_message(mto="grace@localhost/phone", mbody="to the phone", mtype="chat")
    direct = await phone.next_message()
    assert direct["body"] == "to the phone"
    carbon = await asyncio.wait_for(received, WAIT)
    assert carbon["carbon_received"]["body"] == "to the phone"


async def test_vcard_is_stored_and_readable_by_others(session):
    ivan = await session("ivan@localhost/i", "pw")
    ivan.xmpp.register_plugin("xep_0054")
    judy = await session("judy@localhost/j", "pw")
    judy.xmpp.register_plugin("xep_0054")
    card = ivan.xmpp.plugin["xep_0054"].make_vcard()
    card["FN"] = "Ivan the Tester"
    await ivan.xmpp.plugin["xep_0054"].publish_vcard(card)
    got = await judy.xmpp.plugin["xep_0054"].get_vcard("ivan@localhost")
    assert got["vcard_temp"]["FN"] == "Ivan the Tester"


async def test_blocking_refuses_messages_until_unblocked(session):
    kim = await session("kim@localhost/k", "pw")
    kim.xmpp.register_plugin("xep_0191")
    leo = await session("leo@localhost/l", "pw")
    await kim.online()
    await kim.xmpp.plugin["xep_0191"].block(["leo@localhost"])
    blocked = await kim.xmpp.plugin["xep_0191"].get_blocked_jids()
    assert "leo@localhost" in {str(j) for j in blocked}
    leo.xmpp.send_message(mto="kim@localhost", mbody="let me in", mtype="chat")
    bounced = await leo.next_message()
    assert bounced["type"] == "error"
    assert bounced["error"]["condition"] == "service-unavailable"
    await kim.xmpp.plugin["xep_0191"].unblock(["leo@localhost"])
    leo.xmpp.send_message(mto="kim@localhost", mbody="thanks", mtype="chat")
    msg = await kim.next_message()
    assert msg["body"] == "thanks"
