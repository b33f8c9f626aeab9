"""Personal eventing (XEP-0163) with slixmpp's own plugins: entity capabilities (xep_0115)
carry the +notify interests, a nickname (xep_0172) and an avatar (xep_0084) published by one
contact reach the other, bookmarks kept as private storage (XEP-0223: whitelist) stay private,
and an OMEMO device list (an open node) is readable by a contact."""

import asyncio

from slixmpp.xmlstream import ET

from conftest import future_of

WAIT = 20
PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0172", "xep_0084")


async def pep_session(session, jid):
    return await session(jid, "pw", plugins=PLUGINS)


def options(s, **fields):
    """A publish-options form (XEP-0060 §7.1.5) with `pubsub#<name>` fields."""
    form = s.xmpp.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for name, value in fields.items():
        form.add_field(var=f"pubsub#{name}", value=value)
    return form




async def test_nick_avatar_private_storage_and_open_nodes(session):
    rupert = await pep_session(session, "rupert@localhost/r")
    sybil = await pep_session(session, "sybil@localhost/s")
    # Contacts both ways (slixmpp authorizes and subscribes back by itself).
    # Rupert's own request is answered last: then Sybil's roster has him with `from`.
    both = future_of(rupert.xmpp, "presence_subscribed", lambda p: p["from"].bare == "sybil@localhost")
    await rupert.online()
    await sybil.online()
    sybil.xmpp.send_presence(pto="rupert@localhost", ptype="subscribe")
    # The handshake takes round trips after both logged in: by then the server has asked each
    # client about its capabilities (once, at its initial presence) and has the answer.
    await asyncio.wait_for(both, WAIT)

    # A nickname: Rupert wants +notify for it (xep_0172 added the interest) and hears of it.
    nick = future_of(rupert.xmpp, "user_nick_publish", lambda m: m["from"].bare == "sybil@localhost")
    await sybil.xmpp.plugin["xep_0172"].publish_nick("Syb", timeout=WAIT)
    m = await asyncio.wait_for(nick, WAIT)
    assert m["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Syb"

    # An avatar: data, then metadata (which is what clients are notified of).
    data = b"\x89PNG not really an image"
    avatar = sybil.xmpp.plugin["xep_0084"]
    await avatar.publish_avatar(data, timeout=WAIT)
    meta = future_of(rupert.xmpp, "avatar_metadata_publish", lambda m: m["from"].bare == "sybil@localhost")
    aid = avatar.generate_id(data)
    await avatar.publish_avatar_metadata([{"id": aid, "type": "image/png", "bytes": len(data)}], timeout=WAIT)
    m = await asyncio.wait_for(meta, WAIT)
    assert m["pubsub_event"]["items"]["item"]["id"] == aid
    got = await rupert.xmpp.plugin["xep_0084"].retrieve_avatar("sybil@localhost", aid, timeout=WAIT)
    assert got["pubsub"]["items"]["item"]["avatar_data"]["value"] == data

    # Private storage (XEP-0223, as bookmarks use it: whitelist): Sybil reads it back,
    # Rupert may not.
    bm = ET.Element("{urn:xmpp:bookmarks:1}conference", {"name": "Lounge", "autojoin": "true"})
    await sybil.xmpp.plugin["xep_0060"].publish(
        None, "urn:xmpp:bookmarks:1", id="lounge@conference.localhost", payload=bm,
        options=options(sybil, access_model="whitelist", persist_items="true", max_items="max"),
        timeout=WAIT)
    mine = await sybil.xmpp.plugin["xep_0060"].get_items("sybil@localhost", "urn:xmpp:bookmarks:1", timeout=WAIT)
    assert "Lounge" in str(mine)
    refused = False
    try:
        await rupert.xmpp.plugin["xep_0060"].get_items("sybil@localhost", "urn:xmpp:bookmarks:1", timeout=WAIT)
    except Exception:
        refused = True
    assert refused, "a contact read private storage"

    # An OMEMO device list: an open node, published with publish-options.
    ns = "eu.siacs.conversations.axolotl"
    devices = ET.Element("{%s}list" % ns)
    ET.SubElement(devices, "{%s}device" % ns, {"id": "1234"})
    await sybil.xmpp.plugin["xep_0060"].publish(
        None, f"{ns}.devicelist", id="current", payload=devices,
        options=options(sybil, access_model="open"), timeout=WAIT)
    got = await rupert.xmpp.plugin["xep_0060"].get_items("sybil@localhost", f"{ns}.devicelist", timeout=WAIT)
    assert "1234" in str(got)
