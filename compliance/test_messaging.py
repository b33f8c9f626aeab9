"""Messages between accounts and between resources, with slixmpp on both ends."""


async def test_message_between_two_accounts(session):
    alice = await session("alice@localhost/a", "alice-secret")
    bob = await session("bob@localhost/b", "bob-secret")
    await bob.online()
    alice.xmpp.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
    msg = await bob.next_message()
    assert msg["body"] == "hello bob"
    assert msg["type"] == "chat"
    assert str(msg["from"]) == "alice@localhost/a"
    bob.xmpp.send_message(mto=msg["from"], mbody="hello alice", mtype="chat")
    reply = await alice.next_message()
    assert reply["body"] == "hello alice"


async def test_message_between_resources_of_one_account(session):
    one = await session("alice@localhost/one", "alice-secret")
    two = await session("alice@localhost/two", "alice-secret")
    one.xmpp.send_message(mto="alice@localhost/two", mbody="sync", mtype="chat")
    msg = await two.next_message()
    assert msg["body"] == "sync"
    assert str(msg["from"]) == "alice@localhost/one"


async def test_message_to_unavailable_user_returns_an_error(session):
    alice = await session("alice@localhost/err", "alice-secret")
    alice.xmpp.send_message(mto="nobody@localhost", mbody="anyone?", mtype="chat")
    msg = await alice.next_message()
    assert msg["type"] == "error"
    assert msg["error"]["condition"] == "service-unavailable"
