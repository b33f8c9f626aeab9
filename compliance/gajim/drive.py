"""Runs Gajim with its window, and plays the owner of a new group chat through Gajim's own
group chat module: the calls its "Create Group Chat" window, its "Invite" menu, its message
box and its "Kick" dialog make (gajim/gtk/groupchat_creation.py, chat_function_page.py,
chat_stack.py), so that what goes over the wire is Gajim's. Gajim has no remote control, and
clicking through GTK windows from a script would test the script.

Once the account is connected: create ROOM members-only (Gajim then answers the owner's
configuration form itself), invite GUEST when the room is joined (the owner of a members-only
room makes the guest a member, then sends a direct invitation), say SAY once GUEST is in,
and kick GUEST when Gajim has received KICK_AFTER in the room. Each step is printed on stdout ("step …").

    GAJIM_ROOM=… GAJIM_GUEST=… GAJIM_GUEST_NICK=… GAJIM_SAY=… GAJIM_KICK_AFTER=… \\
        python3 drive.py -c PROFILE
"""

import os
import sys

import gajim.gajim

ROOM = os.environ["GAJIM_ROOM"]
GUEST = os.environ["GAJIM_GUEST"]
GUEST_NICK = os.environ["GAJIM_GUEST_NICK"]
SAY = os.environ["GAJIM_SAY"]
KICK_AFTER = os.environ["GAJIM_KICK_AFTER"]
done = set()


def step(name):
    print("step", name, flush=True)
    done.add(name)


def connected(event):
    if "create" in done:
        return
    client = app.get_client(event.account)
    # What the creation window sends for a private room (its "public" switch off).
    config = {
        "muc#roomconfig_roomname": "Made in Gajim",
        "muc#roomconfig_roomdesc": "",
        "muc#roomconfig_publicroom": False,
        "muc#roomconfig_membersonly": True,
        "muc#roomconfig_whois": "anyone",
        "muc#roomconfig_changesubject": True,
        "public_list": False,
    }
    client.get_module("MUC").create(ROOM, config)
    step("create")
    GLib.timeout_add(200, tick, client)


def tick(client):
    muc = client.get_module("MUC")
    data = muc.get_muc_data(ROOM)
    room = client.get_module("Contacts").get_contact(ROOM, groupchat=True)
    if data is None or not room.is_joined:
        return True
    if "invite" not in done:
        muc.invite(JID.from_string(ROOM), JID.from_string(GUEST), "come in")
        step("invite")
        return True
    nicks = {p.name for p in room.get_participants()}
    if "say" not in done and GUEST_NICK in nicks:
        client.send_message(OutgoingMessage(
            account=client.account, contact=room, message=SAY, type_="groupchat"))
        step("say")
        return True
    if "heard" in done and "kick" not in done:
        muc.set_role(JID.from_string(ROOM), GUEST_NICK, "none", "bye")
        step("kick")
    return "kick" not in done


def room_message(event):
    """A message Gajim received in the room (and shows, and stores in its history)."""
    if str(event.jid) == ROOM and event.msgtxt == KICK_AFTER:
        step("heard")


def run_app():
    """Gajim's own start, once it has checked and chosen its libraries' versions (importing
    its modules before that would load GTK 4's Gdk): the handlers, then the application."""
    global GLib, app, OutgoingMessage, JID
    from gi.repository import GLib
    from gajim.common import app, ged
    from gajim.common.structs import OutgoingMessage
    from nbxmpp.protocol import JID

    app.ged.register_event_handler("account-connected", ged.POSTGUI, connected)
    app.ged.register_event_handler("gc-message-received", ged.POSTGUI, room_message)
    start_app()


start_app = gajim.gajim._run_app
gajim.gajim._run_app = run_app

if __name__ == "__main__":
    sys.argv[0] = "gajim"
    sys.exit(gajim.gajim.main())
