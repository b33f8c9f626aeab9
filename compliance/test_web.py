"""Browser clients: Converse.js (from npm) in headless Chromium (Debian's package), driven by
playwright-core, logs in to xmppd over WebSocket and over BOSH on the plain HTTP listener (as
the README tells a first-time user), sends a message to a slixmpp bot on TCP, and gets the
bot's answer; then shares a file (HTTP File Upload), which the bot downloads and quotes; and on
a fresh browser profile, shows a chat that happened on another device, from the archive. Each account may have offline messages from other tests: the bot answers only
the text it is sent, so nothing else can satisfy the check.
"""

import asyncio
import os
import pathlib
import urllib.request

import pytest

HTTP_PORT = os.environ.get("XMPPD_HTTP_PORT")
WEB = pathlib.Path(__file__).parent / "web"

# CI (XMPPD_REQUIRE_WEB=1) must run it; elsewhere it is skipped without node and Chromium.
pytestmark = pytest.mark.skipif(
    not os.environ.get("XMPPD_REQUIRE_WEB")
    and (not HTTP_PORT or not (WEB / "node_modules").exists()),
    reason="needs run.sh's HTTP listener and compliance/web's npm packages",
)


async def converse(transport, url, text, expect, *extra, jid="carol@localhost", peer="dave@localhost"):
    what = ["--history", text] if expect is None else ["--text", text, "--expect", expect]
    proc = await asyncio.create_subprocess_exec(
        "node", str(WEB / "converse.mjs"),
        "--transport", transport, "--url", url,
        "--jid", jid, "--password", "pw",
        "--peer", peer, *what, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.parametrize(
    "transport,path",
    [("websocket", "ws://127.0.0.1:{}/xmpp-websocket"), ("bosh", "http://127.0.0.1:{}/http-bind")],
)
async def test_converse_chats_with_a_tcp_bot(session, transport, path):
    bot = await session("dave@localhost/bot", "pw")
    await bot.online()

    async def answer(msg):
        body = msg["body"]
        if msg["type"] not in ("chat", "normal") or not body:
            return
        if "/upload/" in body:
            # A shared file (XEP-0363): the bot downloads it and says what it read.
            content = await asyncio.to_thread(lambda: urllib.request.urlopen(body.strip(), timeout=20).read())
            bot.xmpp.send_message(mto=msg["from"], mbody=f"file: {content.decode()}", mtype="chat")
        else:
            bot.xmpp.send_message(mto=msg["from"], mbody=f"echo: {body}", mtype="chat")

    bot.xmpp.add_event_handler("message", answer)
    text = f"hello from Converse.js over {transport}"
    file_text = f"a file shared over {transport}"
    code, out = await converse(
        transport, path.format(HTTP_PORT), text, f"echo: {text}",
        "--file-text", file_text, "--file-expect", f"file: {file_text}",
    )
    assert code == 0, out
    assert f'received "echo: {text}"' in out
    assert f'received "file: {file_text}"' in out


async def test_converse_on_a_new_device_shows_history_from_the_archive(session):
    """A chat that happened while the user was online on another device (so nothing waits in
    offline storage) shows up in Converse on a fresh browser profile: from the archive."""
    phone = await session("ursula@localhost/phone", "pw")
    await phone.online()
    bot = await session("trent@localhost/bot", "pw")
    got = asyncio.get_running_loop().create_future()
    phone.xmpp.add_event_handler(
        "message", lambda m: m["body"] == "the last one" and not got.done() and got.set_result(m))
    for text in ("first words", "the last one"):
        bot.xmpp.send_message(mto="ursula@localhost", mbody=text, mtype="chat")
    await asyncio.wait_for(got, 20)
    code, out = await converse(
        "websocket", f"ws://127.0.0.1:{HTTP_PORT}/xmpp-websocket", "the last one", None,
        jid="ursula@localhost", peer="trent@localhost")
    assert code == 0, out
    assert 'history "the last one"' in out
