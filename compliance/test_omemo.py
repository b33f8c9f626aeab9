"""End-to-end encryption (OMEMO, XEP-0384) with slixmpp-omemo, a real OMEMO library: two
contacts publish their device lists and key bundles to PEP (open nodes, with publish-options),
each fetches the other's, and an encrypted message goes from one to the other through the
server, which relays it without being able to read it; the receiver decrypts it."""

import asyncio

from omemo.storage import Just, Nothing, Storage
from slixmpp import JID
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384

from conftest import future_of

WAIT = 20
PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0280", "xep_0334", "xep_0384")


class MemoryStorage(Storage):
    """python-omemo's key/value storage, in memory: each test client is a new device."""

    def __init__(self):
        super().__init__()
        self.values = {}

    async def _load(self, key):
        return Just(self.values[key]) if key in self.values else Nothing()

    async def _store(self, key, value):
        self.values[key] = value

    async def _delete(self, key):
        self.values.pop(key, None)


class Omemo(XEP_0384):
    """slixmpp-omemo's plugin with its keys in memory and blind trust for new devices (BTBV,
    what Conversations does by default)."""

    def plugin_init(self):
        self.keys = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self):
        return self.keys

    @property
    def _btbv_enabled(self):
        return True

    async def _prompt_manual_trust(self, manually_trusted, identifier):
        raise AssertionError("blind trust needs no manual decision")


register_plugin(Omemo)


async def test_an_omemo_message_between_contacts(session):
    victor = await session("victor@localhost/v", "pw", plugins=PLUGINS)
    wendy = await session("wendy@localhost/w", "pw", plugins=PLUGINS)
    both = future_of(victor.xmpp, "presence_subscribed", lambda p: p["from"].bare == "wendy@localhost")
    await victor.online()
    await wendy.online()
    wendy.xmpp.send_presence(pto="victor@localhost", ptype="subscribe")
    await asyncio.wait_for(both, WAIT)
    # Each device has generated its keys and published its bundle and device list.
    for s in (victor, wendy):
        await asyncio.wait_for(s.xmpp.plugin["xep_0384"].get_session_manager(), WAIT)

    got = future_of(wendy.xmpp, "message", lambda m: bool(wendy.xmpp.plugin["xep_0384"].is_encrypted(m)))
    msg = victor.xmpp.make_message(mto="wendy@localhost", mtype="chat")
    msg["body"] = "meet me at noon"
    encrypted, errors = await asyncio.wait_for(
        victor.xmpp.plugin["xep_0384"].encrypt_message(msg, JID("wendy@localhost")), WAIT)
    assert encrypted is not None, errors
    encrypted.send()
    m = await asyncio.wait_for(got, WAIT)
    assert "meet me at noon" not in str(m), "the server only ever saw ciphertext"
    plain, device = await wendy.xmpp.plugin["xep_0384"].decrypt_message(m)
    assert plain["body"] == "meet me at noon"
    assert device.bare_jid == "victor@localhost"
