"""Login with slixmpp: STARTTLS and direct TLS, SCRAM, resource binding, wrong password."""


async def test_starttls_login_binds_the_requested_resource(session):
    s = await session("alice@localhost/compliance", "alice-secret")
    assert str(s.xmpp.boundjid) == "alice@localhost/compliance"
    mech = s.xmpp.plugin["feature_mechanisms"].mech
    assert mech is not None and mech.name.startswith("SCRAM-SHA-"), mech


async def test_direct_tls_login_gets_a_server_generated_resource(session):
    s = await session("bob@localhost", "bob-secret", direct_tls=True)
    assert s.xmpp.boundjid.bare == "bob@localhost"
    assert s.xmpp.boundjid.resource


async def test_wrong_password_fails(session):
    await session("alice@localhost/x", "not-the-password", expect_ok=False)


async def test_server_answers_ping_and_disco(session):
    s = await session("alice@localhost/disco", "alice-secret")
    await s.xmpp.plugin["xep_0199"].send_ping("localhost", timeout=20)
    info = await s.xmpp.plugin["xep_0030"].get_info(jid="localhost", timeout=20)
    features = info["disco_info"]["features"]
    assert "urn:xmpp:ping" in features
    identities = info["disco_info"]["identities"]
    assert any(i[0] == "server" and i[1] == "im" for i in identities), identities
