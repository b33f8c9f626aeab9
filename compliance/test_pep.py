"""Personal eventing (XEP-0163) with slixmpp's own plugins: entity capabilities (xep_0115)
carry the +notify interests, a nickname (xep_0172) and an avatar (xep_0084) published by one
contact reach the other, bookmarks kept as private storage (XEP-0223: whitelist) stay private,
an OMEMO device list (an open node) is readable by a contact; and the older forms the server
converts: vCard avatars (xep_0054, xep_0153) and XEP-0048 bookmarks in private XML (xep_0048 over
xep_0049) against XEP-0402 items (xep_0402)."""

import asyncio
import hashlib

from slixmpp.xmlstream import ET

from conftest import future_of

WAIT = 20
PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0172", "xep_0084",
           "xep_0054", "xep_0049", "xep_0048", "xep_0402")


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

    # The forms older clients use, converted by the server. Sybil's PEP avatar is in her
    # vCard (XEP-0398), as a client of vCards reads it.
    card = await rupert.xmpp.plugin["xep_0054"].get_vcard("sybil@localhost", cached=False, timeout=WAIT)
    assert card["vcard_temp"]["PHOTO"]["BINVAL"] == data
    assert card["vcard_temp"]["PHOTO"]["TYPE"] == "image/png"

    # A client of vCard avatars only (xep_0153) on Rupert's account sets one: Sybil's client
    # hears of it as a PEP avatar and fetches the image from PEP.
    old = await session("rupert@localhost/old", "pw", plugins=("xep_0054", "xep_0153"))
    await old.online()
    image = b"GIF89a a vCard avatar"
    aid2 = hashlib.sha1(image).hexdigest()
    meta = future_of(sybil.xmpp, "avatar_metadata_publish",
                     lambda m: m["from"].bare == "rupert@localhost"
                     and m["pubsub_event"]["items"]["item"]["id"] == aid2)
    await old.xmpp.plugin["xep_0153"].set_avatar(avatar=image, mtype="image/gif", timeout=WAIT)
    await asyncio.wait_for(meta, WAIT)
    got = await sybil.xmpp.plugin["xep_0084"].retrieve_avatar("rupert@localhost", aid2, timeout=WAIT)
    assert got["pubsub"]["items"]["item"]["avatar_data"]["value"] == image

    # Bookmarks: the XEP-0402 item published above is in private XML for an XEP-0048 client
    # (XEP-0411), and one the XEP-0048 client adds becomes an XEP-0402 item.
    stored = await sybil.xmpp.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=WAIT)
    confs = stored["private"]["bookmarks"]["conferences"]
    assert [(c["jid"], c["name"], c["autojoin"]) for c in confs] == [("lounge@conference.localhost", "Lounge", True)]
    marks = stored["private"]["bookmarks"]
    marks.add_conference("work@conference.localhost", "Syb", name="Work", autojoin=False)
    await sybil.xmpp.plugin["xep_0048"].set_bookmarks(marks, method="xep_0049", timeout=WAIT)
    native = await sybil.xmpp.plugin["xep_0060"].get_items("sybil@localhost", "urn:xmpp:bookmarks:1", timeout=WAIT)
    by_id = {i["id"]: i["conference"] for i in native["pubsub"]["items"]}
    assert by_id["work@conference.localhost"]["name"] == "Work"
    assert by_id["work@conference.localhost"]["nick"] == "Syb"
    assert by_id["lounge@conference.localhost"]["autojoin"] is True
