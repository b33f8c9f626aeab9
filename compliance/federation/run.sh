#!/usr/bin/env bash
# Federation interop: xmppd (domain xmppd.fed) and Prosody from Debian's package (prosody.fed) on
# loopback, finding each other by DNS SRV records served by a DNS server on 127.0.0.9 (dns.py),
# with slixmpp clients on both sides (test_federation.py). Twice:
#   - "external": both certificates signed by a CA both servers trust: SASL EXTERNAL, then
#     stream management (XEP-0198) both ways;
#   - "dialback": each server trusts a CA that signed neither: Server Dialback;
#   - "bidi-out" and "bidi-in": Prosody with mod_s2s_bidi (XEP-0288), xmppd's user speaking
#     first, then Prosody's: one stream, made by the first, carries both directions.
# After each run the servers' logs must show the expected method on both sides. Then, once,
# ejabberd from Debian's package (ejabberd.fed) with the shared CA: SASL EXTERNAL both ways.
#
#   compliance/federation/run.sh [path/to/xmppd]
# Needs root (the DNS server binds port 53: libunbound has no port setting; ejabberd runs in a
# mount namespace), prosody, ejabberd, openssl, unshare (util-linux).
# The domains are not under .test: libunbound answers RFC 6761 special-use names itself.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/target/debug/xmppd}")"
venv="$root/compliance/.venv"
if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/compliance/requirements.txt"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pkill -9 -f "beam.smp.*fed@localhost" 2>/dev/null || true
    [ -z "${ejabberd_ran:-}" ] || pkill -9 -u ejabberd -x epmd 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

read -r xc2s xs2s pc2s ps2s ec2s es2s < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# A test CA and a certificate for each domain (both usages: each server is a TLS client too).
cd "$work"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
for ca in ca stranger; do
    openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=$ca" -keyout "$ca.key" -out "$ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
done
for d in xmppd.fed prosody.fed ejabberd.fed; do
    openssl req "${ec[@]}" -subj "/CN=$d" -keyout "$d.key" -out "$d.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$d" > "$d.ext"
    openssl x509 -req -in "$d.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$d.ext" -out "$d.crt" 2>/dev/null
done

"$venv/bin/python" "$here/dns.py" 127.0.0.9 53 \
    "_xmpp-server._tcp.xmppd.fed. SRV 0 5 $xs2s s2s.xmppd.fed." \
    "s2s.xmppd.fed. A 127.0.0.1" \
    "_xmpp-server._tcp.prosody.fed. SRV 0 5 $ps2s s2s.prosody.fed." \
    "s2s.prosody.fed. A 127.0.0.1" \
    "_xmpp-server._tcp.ejabberd.fed. SRV 0 5 $es2s s2s.ejabberd.fed." \
    "s2s.ejabberd.fed. A 127.0.0.1" > "$work/dns.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q "dns ready" "$work/dns.log" && break; sleep 0.1; done
echo "nameserver 127.0.0.9" > "$work/resolv.conf"

# xmppd on xmppd.fed trusting $1 (a CA file name in $work); its log is $work/xmppd-$2.log.
start_xmppd() {
    rm -rf "$work/xmppd-data"
    cat > "$work/xmppd.toml" <<TOML
[server]
hosts = ["xmppd.fed"]
data_dir = "$work/xmppd-data"
log = "info"
[tls]
cert_file = "$work/xmppd.fed.crt"
key_file = "$work/xmppd.fed.key"
[c2s]
listen = ["127.0.0.1:$xc2s"]
tls_listen = []
[http]
listen = []
tls_listen = []
[s2s]
listen = ["127.0.0.1:$xs2s"]
dns_servers = ["127.0.0.9:53"]
ca_file = "$work/$1"
TOML
    "$bin" -c "$work/xmppd.toml" adduser alice@xmppd.fed --password alice-pw >/dev/null
    "$bin" -c "$work/xmppd.toml" serve > "$work/xmppd-$2.log" 2>&1 &
    xpid=$!
    pids+=($xpid)
}

wait_ports() {
    local port ok
    for port in "$@"; do
        ok=""
        for _ in $(seq 1 300); do
            if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
                ok=1
                break
            fi
            sleep 0.1
        done
        [ -n "$ok" ] || { echo "nothing listens on $port" >&2; return 1; }
    done
}

# $1: the peer's domain, $2: its c2s port, $3: the case name (for the logs).
run_pytest() {
    FED_CA="$work/ca.pem" FED_XMPPD_PORT=$xc2s FED_PEER_PORT=$2 FED_PEER_DOMAIN=$1 \
        "$venv/bin/pytest" -q -p no:cacheprovider "$here"
}

# xmppd authenticated the peer's incoming stream with $2 (external | dialback).
xmppd_used() {
    sed 's/\x1b\[[0-9;]*m//g' "$work/xmppd-$3.log" \
        | grep -q "incoming stream authenticated.*remote=$1.*method=\"$2\"" \
        || { echo "xmppd did not authenticate $1 by $2" >&2; return 1; }
}

# Prosody; $1: external | dialback
run_prosody() {
    local case="$1" trust=ca.pem secure=true bidi="" first="" status=0
    case "$case" in
        dialback) trust=stranger.pem; secure=false ;;
        bidi-out) bidi='"s2s_bidi"' ;;
        bidi-in) bidi='"s2s_bidi"'; first=1 ;;
    esac
    rm -rf "$work/prosody-data"
    mkdir -p "$work/prosody-data"
    cat > "$work/prosody.cfg.lua" <<LUA
run_as_root = true
daemonize = false
data_path = "$work/prosody-data"
log = { debug = "$work/prosody-$case.log" }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "presence", "smacks", "pep", $bidi }
interfaces = { "127.0.0.1" }
c2s_ports = { $pc2s }
c2s_direct_tls_ports = { }
s2s_ports = { $ps2s }
s2s_require_encryption = true
s2s_secure_auth = $secure
authentication = "internal_hashed"
unbound = { resolvconf = "$work/resolv.conf", hoststxt = false }
ssl = { certificate = "$work/prosody.fed.crt", key = "$work/prosody.fed.key", cafile = "$work/$trust" }
VirtualHost "prosody.fed"
LUA
    prosodyctl --config "$work/prosody.cfg.lua" register pat prosody.fed pat-pw
    start_xmppd "$trust" "prosody-$case"
    prosody -F --config "$work/prosody.cfg.lua" > "$work/prosody-$case.out" 2>&1 &
    local ppid=$!
    pids+=($ppid)
    wait_ports "$xc2s" "$pc2s" || status=1
    [ "$status" -ne 0 ] || FED_PEER_FIRST="$first" run_pytest prosody.fed "$pc2s" || status=$?
    kill -TERM "$xpid" "$ppid" 2>/dev/null || true
    wait "$xpid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    # Both directions authenticated with the method this case is about.
    local plog="$work/prosody-$case.log" xlog
    xlog="$(sed 's/\x1b\[[0-9;]*m//g' "$work/xmppd-prosody-$case.log")"
    if [ "$status" -eq 0 ] && [ "$case" = external ]; then
        xmppd_used prosody.fed external "prosody-$case" || status=1
        grep -q "Accepting SASL EXTERNAL identity from xmppd.fed" "$plog" \
            && grep -q "SASL EXTERNAL with xmppd.fed succeeded" "$plog" \
            || { echo "prosody and xmppd did not use SASL EXTERNAL both ways" >&2; status=1; }
        # Stream management (XEP-0198) both ways after EXTERNAL, with acks flowing.
        grep -q "outgoing stream authenticated.*remote=prosody.fed.*sm=true" <<< "$xlog" \
            && grep -q "Received\[s2sout\]: <enabled" "$plog" \
            && grep -q "Received\[s2sout\]: <a " "$plog" \
            || { echo "stream management was not used both ways" >&2; status=1; }
    elif [ "$status" -eq 0 ] && [ "$case" = dialback ]; then
        xmppd_used prosody.fed dialback "prosody-$case" || status=1
        ! grep -q "SASL EXTERNAL with xmppd.fed succeeded" "$plog" \
            && grep -q "Sending\[s2sout_unauthed\]: <db:result" "$plog" \
            && grep -q "connection prosody.fed->xmppd.fed is now authenticated" "$plog" \
            && grep -q "verified dialback key... it is valid" "$plog" \
            || { echo "prosody and xmppd did not use dialback both ways" >&2; status=1; }
    elif [ "$status" -eq 0 ] && [ "$case" = bidi-out ]; then
        # XEP-0288: xmppd's stream to Prosody carried both directions; Prosody made none.
        grep -q "outgoing stream authenticated.*remote=prosody.fed" <<< "$xlog" \
            && ! grep -q "incoming stream authenticated" <<< "$xlog" \
            && grep -q "Requested bidirectional stream" "$plog" \
            || { echo "xmppd's stream to prosody was not bidirectional" >&2; status=1; }
    elif [ "$status" -eq 0 ] && [ "$case" = bidi-in ]; then
        # XEP-0288 the other way: Prosody's stream carried xmppd's stanzas; xmppd made none.
        grep -q "incoming stream authenticated.*remote=prosody.fed.*bidi=true" <<< "$xlog" \
            && ! grep -q "outgoing stream authenticated" <<< "$xlog" \
            && grep -q "Requesting bidirectional stream" "$plog" \
            || { echo "prosody's stream to xmppd was not bidirectional" >&2; status=1; }
    fi
    if [ "$status" -ne 0 ]; then
        echo "---- xmppd log (prosody, $case) ----" >&2; tail -n 60 "$work/xmppd-prosody-$case.log" >&2
        echo "---- prosody log ($case) ----" >&2; grep -v "^$" "$work/prosody-$case.log" | tail -n 80 >&2
    fi
    return "$status"
}

# ejabberd (one case, its start is slow): certificates from the shared CA.
run_ejabberd() {
    local ej="$work/ejabberd" status=0
    mkdir -p "$ej/spool" "$ej/logs"
    cat "$work/ejabberd.fed.crt" "$work/ejabberd.fed.key" > "$ej/ejabberd.fed.pem"
    cp "$work/ca.pem" "$ej/ca.pem"
    # Erlang's resolver asks the loopback DNS server only (resolv_conf "" stops it reloading
    # the system's nameservers over it); localhost from the file: the node's name resolves.
    printf '%s\n' '{resolv_conf, ""}.' '{hosts_file, ""}.' '{lookup, [file, dns]}.' \
        '{host, {127,0,0,1}, ["localhost", "s2s.xmppd.fed", "xmppd.fed"]}.' \
        '{nameserver, {127,0,0,9}, 53}.' > "$ej/inetrc"
    cat > "$ej/ejabberd.yml" <<YML
hosts: ["ejabberd.fed"]
loglevel: info
certfiles: ["$ej/ejabberd.fed.pem"]
ca_file: "$ej/ca.pem"
s2s_use_starttls: required
outgoing_s2s_families: [ipv4]
listen:
  - port: $ec2s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  - port: $es2s
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
auth_method: internal
auth_password_format: scram
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}
  mod_caps: {}
  mod_pubsub:
    plugins: ["pep"]
YML
    printf 'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n' > "$ej/ejabberdctl.cfg"
    chown -R ejabberd "$ej"
    local ctl="ejabberdctl --config-dir $ej --config $ej/ejabberd.yml --ctl-config $ej/ejabberdctl.cfg --spool $ej/spool --logs $ej/logs --node fed@localhost"
    # ejabberd 23.01 finds the addresses of SRV targets with getaddrinfo (net:getaddrinfo), which
    # reads /etc/hosts and not the inetrc: it runs in a mount namespace of its own whose /etc/hosts
    # names the xmppd.fed target, so the machine's /etc/hosts is left alone.
    printf '127.0.0.1 localhost s2s.xmppd.fed\n::1 localhost\n' > "$ej/hosts"
    unshare --mount sh -c "mount --bind '$ej/hosts' /etc/hosts && exec su ejabberd -s /bin/sh -c 'exec $ctl foreground'" \
        > "$ej/out.log" 2>&1 &
    pids+=($!)
    start_xmppd ca.pem ejabberd
    wait_ports "$xc2s" "$ec2s" || status=1
    if [ "$status" -eq 0 ]; then
        su ejabberd -s /bin/sh -c "$ctl started" >/dev/null 2>&1 || true
        su ejabberd -s /bin/sh -c "$ctl register pat ejabberd.fed pat-pw" || status=1
    fi
    [ "$status" -ne 0 ] || run_pytest ejabberd.fed "$ec2s" || status=$?
    kill -TERM "$xpid" 2>/dev/null || true
    wait "$xpid" 2>/dev/null || true
    su ejabberd -s /bin/sh -c "$ctl stop" >/dev/null 2>&1 || true
    if [ "$status" -eq 0 ]; then
        xmppd_used ejabberd.fed external ejabberd || status=1
        grep -q "Accepted inbound s2s EXTERNAL authentication xmppd.fed -> ejabberd.fed" "$ej/logs/ejabberd.log" \
            && grep -q "Accepted outbound s2s EXTERNAL authentication ejabberd.fed -> xmppd.fed" "$ej/logs/ejabberd.log" \
            || { echo "ejabberd and xmppd did not use SASL EXTERNAL both ways" >&2; status=1; }
    fi
    if [ "$status" -ne 0 ]; then
        echo "---- xmppd log (ejabberd) ----" >&2; tail -n 60 "$work/xmppd-ejabberd.log" >&2
        echo "---- ejabberd log ----" >&2; tail -n 80 "$ej/logs/ejabberd.log" >&2 || true
        tail -n 30 "$ej/out.log" >&2 || true
    fi
    return "$status"
}

status=0
run_prosody external || status=$?
run_prosody dialback || status=$?
run_prosody bidi-out || status=$?
run_prosody bidi-in || status=$?
if [ -z "${FED_SKIP_EJABBERD:-}" ]; then
    chmod 755 "$work"
    ejabberd_ran=1
    run_ejabberd || status=$?
fi
exit "$status"
