#!/usr/bin/env bash
# Compliance suite: runs third-party clients (slixmpp; Converse.js in headless Chromium;
# Profanity in tmux; Gajim in Xvfb) against the xmppd binary.
#
#   compliance/run.sh [path/to/xmppd]     (default: target/debug/xmppd, built if missing)
#
# It creates a venv with the pinned client libraries, starts xmppd on free loopback ports
# with a temporary data folder (so the self-signed certificate is created as on a first start),
# creates the accounts with the CLI, runs pytest, then stops the server with SIGTERM and checks
# that it shut down cleanly.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="${1:-$root/target/debug/xmppd}"
if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build)
    bin="$root/target/debug/xmppd"
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -9 "$server_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

read -r port tls_port http_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# Converse.js and playwright-core for the browser test (compliance/web), pinned by its lock file.
if command -v npm >/dev/null && [ ! -d "$here/web/node_modules" ]; then
    (cd "$here/web" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The defaults, as `cargo run --release` has them, but for the ports and the data folder.
write_config() {
    cat > "$work/xmppd.toml" <<TOML
[server]
hosts = ["localhost"]
data_dir = "$work/data"
log = "${XMPPD_COMPLIANCE_LOG:-info}"
[c2s]
listen = ["127.0.0.1:$port"]
tls_listen = ["127.0.0.1:$tls_port"]
$1
[http]
listen = ["127.0.0.1:$http_port"]
tls_listen = []
[s2s]
listen = ["127.0.0.1:0"]
TOML
    "$bin" check -c "$work/xmppd.toml"
}

# Starts the server, runs pytest with the given arguments, stops it with SIGTERM and checks
# that it shut down cleanly.
run_suite() {
    local status=0
    "$bin" -c "$work/xmppd.toml" serve > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $tls_port), 0.2)" 2>/dev/null; then break; fi
        sleep 0.1
    done
    XMPPD_HOST=127.0.0.1 XMPPD_PORT=$port XMPPD_TLS_PORT=$tls_port XMPPD_HTTP_PORT=$http_port \
        XMPPD_CA="$work/data/cert.pem" \
        "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@" || status=$?
    kill -TERM "$server_pid"
    if ! timeout 15 tail --pid="$server_pid" -f /dev/null; then
        echo "xmppd did not exit within 15 s of SIGTERM" >&2
        status=1
    fi
    wait "$server_pid" || { echo "xmppd exited with status $? after SIGTERM" >&2; status=1; }
    server_pid=""
    if [ "$status" -ne 0 ]; then
        echo "---- server log ----" >&2
        tail -n 100 "$work/server.log" >&2
    fi
    return "$status"
}

write_config ""
"$bin" -c "$work/xmppd.toml" adduser alice@localhost --password alice-secret
echo bob-secret | "$bin" -c "$work/xmppd.toml" adduser bob@localhost
"$bin" -c "$work/xmppd.toml" listusers | grep -qx bob@localhost
for u in carol dave erin frank grace heidi ivan judy kim leo mallory nina oscar olga pavel peggy quinn rupert sybil trent ursula victor wendy yann zoe; do
    "$bin" -c "$work/xmppd.toml" adduser "$u@localhost" --password pw >/dev/null
done

status=0
# Everything on the defaults (compression off) ...
run_suite -k "not compressed" || status=$?
# ... then the XEP-0138 case on a server that offers compression, also over TLS.
write_config "compression = true
compression_over_tls = true"
run_suite -k "compressed" || status=$?
exit "$status"
