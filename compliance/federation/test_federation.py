"""Federation with Prosody or ejabberd (run by compliance/federation/run.sh): alice on xmppd
(xmppd.fed) and pat on the other server, slixmpp on both sides: subscription both ways, presence, chat both
ways, and personal eventing (XEP-0163: each follows the other's nickname, XEP-0172, through
entity capabilities) both ways. The servers find each other by DNS SRV; how they authenticate (SASL EXTERNAL or
dialback) is set by run.sh and checked there in both servers' logs."""

import asyncio
import os
import ssl

import pytest
import slixmpp

CA = os.environ.get("FED_CA")
XMPPD_PORT = int(os.environ.get("FED_XMPPD_PORT", "0"))
# The other server (Prosody: pat@prosody.fed).
PEER_PORT = int(os.environ.get("FED_PEER_PORT", "0"))
PEER = os.environ.get("FED_PEER_DOMAIN", "prosody.fed")
PAT = f"pat@{PEER}"
# Who speaks first, and so whose server makes the first stream: alice (xmppd), or pat.
PEER_FIRST = bool(os.environ.get("FED_PEER_FIRST"))
WAIT = 15

pytestmark = pytest.mark.skipif(not CA, reason="run by compliance/federation/run.sh")


class Client:
    """A slixmpp client that accepts subscriptions and subscribes back (its defaults)."""

    def __init__(self, jid, password, port):
        x = slixmpp.ClientXMPP(jid, password)
        x.register_plugin("xep_0030")
        x.register_plugin("xep_0199")
        # Capabilities with nick+notify (xep_0172 registers its interest through xep_0163).
        x.register_plugin("xep_0115")
        x.register_plugin("xep_0163")
        x.register_plugin("xep_0172")
        x.ssl_context = ssl.create_default_context(cafile=CA)
        x.enable_plaintext = False
        x.auto_authorize = True
        x.auto_subscribe = True
        self.xmpp = x
        self.port = port
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.nicks = asyncio.Queue()
        self.started = asyncio.get_running_loop().create_future()
        x.add_event_handler("session_start", self._start)
        x.add_event_handler("failed_auth", lambda _: self._settle(False))
        x.add_event_handler("message", self.messages.put_nowait)
        x.add_event_handler("presence_available", self.presences.put_nowait)
        x.add_event_handler("user_nick_publish", self.nicks.put_nowait)

    def _settle(self, ok):
        if not self.started.done():
            self.started.set_result(ok)

    async def _start(self, _):
        await self.xmpp.get_roster()
        self.xmpp.send_presence()
        self._settle(True)

    async def start(self):
        self.xmpp.connect("127.0.0.1", self.port)
        assert await asyncio.wait_for(self.started, WAIT), "login failed"

    async def presence_from(self, bare):
        while True:
            p = await asyncio.wait_for(self.presences.get(), WAIT)
            if p["from"].bare == bare:
                return p

    async def message_with(self, body):
        while True:
            m = await asyncio.wait_for(self.messages.get(), WAIT)
            if m["type"] == "error":
                raise AssertionError(f"error: {m}")
            if m["body"] == body:
                return m

    async def nick_of(self, bare, nick):
        """Waits for `bare`'s PEP event that publishes `nick`."""
        while True:
            m = await asyncio.wait_for(self.nicks.get(), WAIT)
            if m["from"].bare == bare and m["pubsub_event"]["items"]["item"]["nick"]["nick"] == nick:
                return m

    async def stop(self):
        self.xmpp.disconnect()
        try:
            await asyncio.wait_for(self.xmpp.disconnected, WAIT)
        except Exception:
            pass


async def test_subscription_presence_and_chat_with_another_server():
    alice = Client("alice@xmppd.fed", "alice-pw", XMPPD_PORT)
    pat = Client(PAT, "pat-pw", PEER_PORT)
    try:
        await alice.start()
        await pat.start()
        # RFC 6121 §3: one asks; the other's client approves and asks back; the first approves.
        if PEER_FIRST:
            pat.xmpp.send_presence(pto="alice@xmppd.fed", ptype="subscribe")
        else:
            alice.xmpp.send_presence(pto=PAT, ptype="subscribe")
        got = await pat.presence_from("alice@xmppd.fed")
        assert got["from"].domain == "xmppd.fed"
        got = await alice.presence_from(PAT)
        assert got["from"].resource, "presence from pat's resource"

        async def both(c, contact):
            for _ in range(WAIT * 10):
                if c.xmpp.client_roster[contact]["subscription"] == "both":
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{contact}: {c.xmpp.client_roster[contact]['subscription']}")

        await both(alice, PAT)
        await both(pat, "alice@xmppd.fed")
        # Chat both ways, to the bare JID (from xmppd) and back to the full JID.
        alice.xmpp.send_message(mto=PAT, mbody="hello from xmppd", mtype="chat")
        m = await pat.message_with("hello from xmppd")
        assert m["from"].bare == "alice@xmppd.fed"
        pat.xmpp.send_message(mto=m["from"], mbody=f"hello from {PEER}", mtype="chat")
        m = await alice.message_with(f"hello from {PEER}")
        assert m["from"].bare == PAT
        # A ping to the remote server itself (XEP-0199 over s2s) is answered.
        await alice.xmpp.plugin["xep_0199"].send_ping(PEER, timeout=WAIT)
        await pat.xmpp.plugin["xep_0199"].send_ping("xmppd.fed", timeout=WAIT)
        # PEP both ways: each server learns the other's user's capabilities (asking the client
        # through its server) and sends the nick event, or the last item once it knows them.
        await alice.xmpp.plugin["xep_0172"].publish_nick("Alice of xmppd")
        await pat.nick_of("alice@xmppd.fed", "Alice of xmppd")
        await pat.xmpp.plugin["xep_0172"].publish_nick(f"Pat of {PEER}")
        await alice.nick_of(PAT, f"Pat of {PEER}")
    finally:
        await alice.stop()
        await pat.stop()
