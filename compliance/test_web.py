"""Browser clients: Converse.js (from npm) in headless Chromium (Debian's package), driven by
playwright-core, logs in to xmppd over WebSocket and over BOSH on the plain HTTP listener (as
the README tells a first-time user), sends a message to a slixmpp bot on TCP, and gets the
bot's answer; then shares a file (HTTP File Upload), which the bot downloads and quotes. Each account may have offline messages from other tests: the bot answers only
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


async def converse(transport, url, text, expect, *extra):
    proc = await asyncio.create_subprocess_exec(
        "node", str(WEB / "converse.mjs"),
        "--transport", transport, "--url", url,
        "--jid", "carol@localhost", "--password", "pw",
        "--peer", "dave@localhost", "--text", text, "--expect", expect, *extra,
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
