"""Stream-level reliability with slixmpp: XEP-0198 resumption after a dropped TCP connection,
and XEP-0138 compression.

slixmpp's own xep_0198 plugin drives stream management unchanged. No Python XMPP library
ships XEP-0138 (slixmpp, aioxmpp, xmpppy and libstrophe 0.12 were checked), so the
compression test adds the client side as a slixmpp stream feature below: slixmpp negotiates
it like any other feature, and zlib (Python's) wraps its transport afterwards.
"""

import asyncio
import zlib

from slixmpp.stanza import StreamFeatures
from slixmpp.xmlstream import ElementBase, StanzaBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import HOST, PORT, WAIT, Session

NS_FEATURE = "http://jabber.org/features/compress"
NS = "http://jabber.org/protocol/compress"


async def wait_event(xmpp, name):
    fut = asyncio.get_running_loop().create_future()
    xmpp.add_event_handler(
        name, lambda e: fut.done() or fut.set_result(e), disposable=True
    )
    return fut


async def test_resumption_after_a_dropped_connection_delivers_each_message_once(session):
    bob = Session("bob@localhost/phone", "bob-secret")
    bob.xmpp.register_plugin("xep_0198")
    enabled = await wait_event(bob.xmpp, "sm_enabled")
    assert await bob.start()
    await asyncio.wait_for(enabled, WAIT)
    sm = bob.xmpp.plugin["xep_0198"]
    assert sm.sm_id, "the server did not grant resumption"
    await bob.online()
    alice = await session("alice@localhost/pc", "alice-secret")
    alice.xmpp.send_message(mto="bob@localhost/phone", mbody="before", mtype="chat")
    assert (await bob.next_message())["body"] == "before"

    # The TCP connection dies without a closing </stream:stream> (a phone changing networks).
    gone = await wait_event(bob.xmpp, "disconnected")
    bob.xmpp.abort()
    await asyncio.wait_for(gone, WAIT)
    for i in range(1, 6):
        alice.xmpp.send_message(mto="bob@localhost", mbody=f"m{i}", mtype="chat")
    # Once the server answers this ping, it has handled the five messages.
    await alice.xmpp.plugin["xep_0199"].send_ping("localhost", timeout=WAIT)

    resumed = await wait_event(bob.xmpp, "session_resumed")
    bob.xmpp.connect(HOST, PORT)
    await asyncio.wait_for(resumed, WAIT)
    alice.xmpp.send_message(mto="bob@localhost/phone", mbody="after", mtype="chat")
    bodies = []
    while not bodies or bodies[-1] != "after":
        bodies.append((await bob.next_message())["body"])
    assert bodies == ["m1", "m2", "m3", "m4", "m5", "after"], bodies
    # Acknowledge before leaving: what is unacknowledged at the end goes to offline storage.
    sm.send_ack()
    await bob.stop()


class CompressionFeature(ElementBase):
    name = "compression"
    namespace = NS_FEATURE
    plugin_attrib = "compression"
    interfaces = set()


class Compressed(StanzaBase):
    name = "compressed"
    namespace = NS
    interfaces = set()


class Zlib:
    """XEP-0138 for a slixmpp client: negotiated after SASL, then zlib both ways."""

    def __init__(self, xmpp):
        self.xmpp = xmpp
        self.wire = 0
        self.plain = 0
        self.on = False
        register_stanza_plugin(StreamFeatures, CompressionFeature)
        xmpp.register_stanza(Compressed)
        xmpp.register_handler(
            Callback("Compressed", MatchXPath(f"{{{NS}}}compressed"), self._compressed)
        )
        # After SASL (100), before stream management (9000) and bind (10000).
        xmpp.register_feature("compression", self._offered, restart=True, order=5000)

    def _offered(self, features):
        methods = [m.text for m in features.xml.iter(f"{{{NS_FEATURE}}}method")]
        if "zlib" not in methods:
            return False
        self.xmpp.send_raw(f"<compress xmlns='{NS}'><method>zlib</method></compress>")
        return True

    def _compressed(self, _stanza):
        xmpp, z = self.xmpp, self
        inflate, deflate = zlib.decompressobj(), zlib.compressobj()
        receive, transport = xmpp.data_received, xmpp.transport

        def data_received(data):
            z.wire += len(data)
            plain = inflate.decompress(data)
            z.plain += len(plain)
            receive(plain)

        class Transport:
            def write(self, data):
                out = deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)
                z.plain += len(data)
                z.wire += len(out)
                transport.write(out)

            def __getattr__(self, name):
                return getattr(transport, name)

        xmpp.data_received = data_received
        xmpp.transport = Transport()
        self.on = True
        xmpp.init_parser()
        xmpp.send_raw(xmpp.stream_header)


async def test_compressed_stream_carries_a_conversation(session):
    alice = Session("alice@localhost/zip", "alice-secret")
    z = Zlib(alice.xmpp)
    assert await alice.start()
    assert z.on, "compression was not negotiated"
    bob = await session("bob@localhost/plain", "bob-secret")
    await bob.online()
    await alice.online()
    for i in range(20):
        alice.xmpp.send_message(
            mto="bob@localhost/plain",
            mbody=f"compressed hello number {i}, see you at the station at six",
            mtype="chat",
        )
        assert (await bob.next_message())["body"].startswith(f"compressed hello number {i},")
        bob.xmpp.send_message(mto="alice@localhost/zip", mbody=f"reply {i}", mtype="chat")
        assert (await alice.next_message())["body"] == f"reply {i}"
    assert z.wire < z.plain / 2, (z.wire, z.plain)
    await alice.stop()
