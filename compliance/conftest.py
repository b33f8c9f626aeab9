"""Fixtures for the compliance suite: slixmpp clients against the xmppd that run.sh started.

run.sh exports XMPPD_HOST, XMPPD_PORT (STARTTLS), XMPPD_TLS_PORT (direct TLS), XMPPD_CA (the
self-signed certificate the server created on first start) and the accounts it made with the CLI.
"""

import asyncio
import os
import ssl

import pytest
import slixmpp

HOST = os.environ.get("XMPPD_HOST", "127.0.0.1")
PORT = int(os.environ.get("XMPPD_PORT", "5222"))
TLS_PORT = int(os.environ.get("XMPPD_TLS_PORT", "5223"))
CA = os.environ.get("XMPPD_CA")
WAIT = 20


class Session:
    """One slixmpp client, connected and (if the password is right) bound."""

    def __init__(self, jid, password, direct_tls=False):
        self.xmpp = slixmpp.ClientXMPP(jid, password)
        self.xmpp.register_plugin("xep_0030")
        self.xmpp.register_plugin("xep_0199")
        self.xmpp.register_plugin("xep_0203")
        ctx = ssl.create_default_context(cafile=CA)
        self.xmpp.ssl_context = ctx
        self.xmpp.enable_direct_tls = direct_tls
        self.xmpp.enable_starttls = not direct_tls
        self.xmpp.enable_plaintext = False
        self.direct_tls = direct_tls
        self.messages = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.outcome = loop.create_future()
        self.xmpp.add_event_handler("session_start", lambda _: self._settle(True))
        self.xmpp.add_event_handler("failed_auth", lambda _: self._settle(False))
        self.xmpp.add_event_handler("message", self.messages.put_nowait)

    def _settle(self, ok):
        if not self.outcome.done():
            self.outcome.set_result(ok)

    async def start(self):
        self.xmpp.connect(HOST, TLS_PORT if self.direct_tls else PORT)
        return await asyncio.wait_for(self.outcome, WAIT)

    async def next_message(self):
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def online(self, priority=0):
        """Sends available presence, then pings the server: once the ping is answered the
        presence has been processed (the server handles a session's stanzas in order)."""
        self.xmpp.send_presence(ppriority=priority)
        await self.xmpp.plugin["xep_0199"].send_ping(self.xmpp.boundjid.domain, timeout=WAIT)

    async def stop(self):
        self.xmpp.disconnect()
        try:
            await asyncio.wait_for(self.xmpp.disconnected, WAIT)
        except Exception:
            pass


@pytest.fixture
async def session():
    """Factory: `await session(jid, password)` returns a bound Session (with `plugins`
    registered before it connects); all are closed after."""
    made = []

    async def make(jid, password, direct_tls=False, expect_ok=True, plugins=()):
        s = Session(jid, password, direct_tls)
        # Before connecting: some plugins set up at session_bind (PEP's event stanzas).
        for p in plugins:
            s.xmpp.register_plugin(p)
        made.append(s)
        ok = await s.start()
        assert ok == expect_ok, f"login of {jid}: expected {expect_ok}, got {ok}"
        return s

    yield make
    for s in made:
        await s.stop()


def future_of(xmpp, event, pred=lambda _: True):
    """A future for the first `event` of `xmpp` for which `pred` holds."""
    fut = asyncio.get_running_loop().create_future()

    def handler(stanza):
        if not fut.done() and pred(stanza):
            fut.set_result(stanza)

    xmpp.add_event_handler(event, handler)
    return fut
