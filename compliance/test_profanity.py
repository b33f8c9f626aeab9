"""Profanity (Debian's package, a terminal client) driven through tmux as a person would type:
on a fresh profile it connects over STARTTLS (trusting the server's self-signed certificate),
shows a chat message that came while it was away (offline storage), enters a group chat
created by a slixmpp bot, and says something the bot hears and answers."""

import asyncio
import os
import shutil
import tempfile

import pytest

from conftest import future_of

WAIT = 20
ROOM = "den@conference.localhost"
PORT = os.environ.get("XMPPD_PORT", "5222")

# CI (XMPPD_REQUIRE_TERMINAL=1) must run it; elsewhere it is skipped without Profanity and tmux.
pytestmark = pytest.mark.skipif(
    not os.environ.get("XMPPD_REQUIRE_TERMINAL")
    and not (shutil.which("profanity") and shutil.which("tmux")),
    reason="needs profanity and tmux",
)


async def tmux(*args):
    p = await asyncio.create_subprocess_exec("tmux", *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    return out.decode(errors="replace")


async def type_line(session, text):
    await tmux("send-keys", "-t", session, "-l", text)
    await tmux("send-keys", "-t", session, "Enter")


async def screen_shows(session, text, wait=WAIT):
    """Waits until `text` is on Profanity's screen; returns the screen."""
    shown = ""
    for _ in range(int(wait * 4)):
        shown = await tmux("capture-pane", "-p", "-t", session)
        if text in shown:
            return shown
        await asyncio.sleep(0.25)
    raise AssertionError(f"{text!r} not on screen:\n{shown}")


async def test_profanity_chats_one_to_one_and_in_a_room(session):
    bot = await session("yann@localhost/bot", "pw")
    bot.xmpp.register_plugin("xep_0045")
    bot.xmpp.register_plugin("xep_0004")
    await bot.online()
    # Before Profanity connects: a message that waits in offline storage.
    bot.xmpp.send_message(mto="zoe@localhost", mbody="while you were away", mtype="chat")
    muc = bot.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(ROOM, "Bot", timeout=WAIT)
    await muc.set_room_config(ROOM, await muc.get_room_config(ROOM))

    home = tempfile.mkdtemp()
    name = f"prof{os.getpid()}"
    env = {"HOME": home, "TERM": "xterm-256color", "PATH": os.environ["PATH"]}
    proc = await asyncio.create_subprocess_exec(
        "tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50",
        "env", *[f"{k}={v}" for k, v in env.items()], "profanity",
    )
    await proc.wait()
    try:
        await screen_shows(name, "Profanity")
        await type_line(name, f"/connect zoe@localhost server 127.0.0.1 port {PORT} tls trust")
        await screen_shows(name, "password")
        await type_line(name, "pw")
        await screen_shows(name, "logged in")
        # The message opened a chat window of its own: window 2.
        await screen_shows(name, "yann@localhost (1)")
        await type_line(name, "/win 2")
        await screen_shows(name, "while you were away")

        heard = future_of(bot.xmpp, "groupchat_message",
                          lambda m: m["body"] == "hello from profanity")
        await type_line(name, f"/join {ROOM} nick Zoe")
        await screen_shows(name, "Bot")
        await type_line(name, "hello from profanity")
        m = await asyncio.wait_for(heard, WAIT)
        assert m["from"].resource == "Zoe"
        bot.xmpp.send_message(mto=ROOM, mbody="welcome, Zoe", mtype="groupchat")
        await screen_shows(name, "welcome, Zoe")
    finally:
        await tmux("kill-session", "-t", name)
        shutil.rmtree(home, ignore_errors=True)
