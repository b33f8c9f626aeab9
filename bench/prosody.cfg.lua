-- Prosody as bench/compare.sh runs it: Debian's Prosody with the modules that match what xmppd
-- does by default (roster, presence, offline, carbons, blocking, ping, version, disco, stream
-- management, WebSocket on loopback HTTP), SCRAM
-- with hashed passwords, TLS required, in-band registration open, no rate limits (mod_limits
-- is not loaded), registration throttling off. Placeholders are filled in by compare.sh.
run_as_root = true
daemonize = false
pidfile = "DIR/prosody.pid"
data_path = "DIR/data"
log = { { levels = { min = "warn" }, to = "file", filename = "DIR/prosody.log" } }
network_backend = "epoll"
-- Prosody's own network setting for latency (server_epoll): TCP_NODELAY (nagle = false), as
-- xmppd and ejabberd set it. Its other one, opportunistic_writes = true, was tried: Debian's
-- Prosody 0.12.3 then spins at 100% CPU after the first few in-band registrations, so it
-- stays off.
network_settings = { nagle = false }
c2s_ports = { PORT }
c2s_interfaces = { "127.0.0.1" }
legacy_ssl_ports = { }
s2s_ports = { }
component_ports = { }
http_ports = { HTTPPORT }
http_interfaces = { "127.0.0.1" }
https_ports = { }
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "carbons"; "blocklist"; "ping"; "register";
	"version"; "offline"; "websocket"; "smacks";
}
-- XMPP over WebSocket on loopback (the s1w/s2w scenarios), as xmppd treats a loopback
-- connection: private, so SASL is allowed on ws://.
consider_websocket_secure = true
modules_disabled = { "s2s" }
authentication = "internal_hashed"
c2s_require_encryption = TLSREQ
allow_registration = true
min_seconds_between_registrations = 0
certificates = "DIR/certs"
VirtualHost "localhost"
	ssl = { key = "DIR/certs/localhost.key"; certificate = "DIR/certs/localhost.crt" }
	-- The message archive (the s2m scenario; compare.sh uncomments these lines): mod_mam on
	-- SQL storage (SQLite through LuaDBI), every message archived, nothing expired.
--MAM 	modules_enabled = { "mam" }
--MAM 	storage = { archive = "sql" }
--MAM 	sql = { driver = "SQLite3", database = "DIR/data/archive.sqlite" }
--MAM 	default_archive_policy = true
--MAM 	archive_expires_after = "never"
-- Group chat for the R scenario: any local user creates rooms, up to 1,000 occupants.
Component "conference.localhost" "muc"
	max_occupants = 1000
	restrict_room_creation = false
