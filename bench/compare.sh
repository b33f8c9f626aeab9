#!/usr/bin/env bash
# Runs the same benchmark scenarios against xmppd, Prosody and ejabberd on this machine, in one
# run, alternating between the servers, each figure REPS times; prints a table of medians and
# ratios (docs/benchmarks.md explains the method). Loopback only; every step is bounded in time.
#
#   bench/compare.sh                      # everything, 3 repetitions
#   REPS=1 SCENARIOS="s2 s4" bench/compare.sh
#
# Scenarios: s1 (idle, TLS), s1p (idle, plain TCP: each server started with TLS not required),
# s2 (chat), s3 (presence, rosters of 100 in groups), s3h (presence, HUBS users with rosters of
# HUB_CONTACTS), s4 (logins); s1w and s2w are s1 and s2 over WebSocket (RFC 7395) on each
# server's loopback HTTP port (ws://, no TLS, as behind a reverse proxy); s2m is s2 with each
# server's message archive on (xmppd's [archive], mod_mam on SQLite for the others); r (group chat: a room
# of each of ROOM_SIZES occupants, ROOM_SENDERS posting); s2sm, s3sm and rsm are s2, s3 and r
# with stream management (XEP-0198) enabled by every client, as mobile clients do.
# Sizes (environment): IDLE_COUNTS="1000 10000" PLAIN_COUNTS=10000 CHAT_USERS=1000
# FANOUT_USERS=505 FANOUT_CONTACTS=100 HUBS=20 HUB_CONTACTS=1000 LOGINS=2000 CHAT_STEP=5
# SERVERS="xmppd prosody ejabberd" MECH=SCRAM-SHA-1; INBOX=false turns xmppd's unread counts off
# (they are on by default, and in s2m).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
SERVERS=${SERVERS:-"xmppd prosody ejabberd"}
SCENARIOS=${SCENARIOS:-"s1 s1p s2 s2sm s2m s3 s3sm s3h s4 s1w s2w r rsm"}
IDLE_COUNTS=${IDLE_COUNTS:-"1000 10000"}
PLAIN_COUNTS=${PLAIN_COUNTS:-10000}
CHAT_USERS=${CHAT_USERS:-1000}
FANOUT_USERS=${FANOUT_USERS:-505}
FANOUT_CONTACTS=${FANOUT_CONTACTS:-100}
HUBS=${HUBS:-20}
HUB_CONTACTS=${HUB_CONTACTS:-1000}
HUB_USER='big{}'   # the hub scenario's accounts, apart from the others' bench{}
LOGINS=${LOGINS:-2000}
ROOM_SIZES=${ROOM_SIZES:-"50 500"}   # occupants of the R scenario's room
ROOM_SENDERS=${ROOM_SENDERS:-10}
CHAT_STEP=${CHAT_STEP:-5}   # seconds per step of the S2 ramp
LATENCY_AT=${LATENCY_AT:-1000,5000}   # S2 latency at these rates on every server
MECH=${MECH:-SCRAM-SHA-1}   # the one mechanism all three offer with hashed storage
RUN=${RUN:-$ROOT/bench/runs/$(date +%Y%m%d-%H%M%S)}
BENCH=$ROOT/target/release/xmppd-bench
XMPPD=$ROOT/target/release/xmppd
declare -A PORT=([xmppd]=25222 [prosody]=25223 [ejabberd]=25224)
# HTTP, for XMPP over WebSocket (s1w, s2w).
declare -A HTTP=([xmppd]=25280 [prosody]=25281 [ejabberd]=25282)
WS_PATH=/xmpp-websocket

log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

# --- installation ------------------------------------------------------------------------
need=()
command -v prosody >/dev/null || need+=(prosody)
command -v ejabberdctl >/dev/null || need+=(ejabberd)
command -v openssl >/dev/null || need+=(openssl)
command -v sqlite3 >/dev/null || need+=(sqlite3)
# The archive (s2m) on SQL storage: SQLite drivers for ejabberd and for Prosody's LuaDBI.
ls -d /usr/lib/erlang/lib/p1_sqlite3-* >/dev/null 2>&1 || need+=(erlang-p1-sqlite3)
dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1 || need+=(lua-dbi-sqlite3)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
log "building xmppd and xmppd-bench (release)"
(cd "$ROOT" && cargo build --release --quiet --bin xmppd --bin xmppd-bench)

# Each process may hold at most 20,000 descriptors here; ask for that much.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
: >"$RESULTS"
log "run folder $RUN (fd limit $(ulimit -n))"

# --- one certificate for all three: the same key type (ECDSA P-256, as xmppd makes its own),
# so that logins compare the same cryptography ------------------------------------------
mkdir -p "$RUN/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$RUN/certs/localhost.key" \
    -out "$RUN/certs/localhost.crt" -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null
cat "$RUN/certs/localhost.key" "$RUN/certs/localhost.crt" >"$RUN/certs/localhost.pem"

# --- starting and stopping ---------------------------------------------------------------
# TLSREQ=false (s1p) starts a server with TLS offered but not required.
# ARCHIVE=true (s2m) turns the message archive on: xmppd's [archive], and the lines marked MAM
# in Prosody's and ejabberd's configurations.
fill() {
    local mam='s@^\(--\|#\)MAM @@'
    [ "${ARCHIVE:-false}" = true ] || mam='\@^\(--\|#\)MAM @d'
    sed "s#DIR#$2#g; s#\bHTTPPORT\b#$4#g; s#\bPORT\b#$3#g; s#TLSREQ#${TLSREQ:-true}#g
         s#ARCHIVE#${ARCHIVE:-false}#g; s#INBOX#${INBOX:-true}#g; $mam" "$1"
}

wait_port() {
    for _ in $(seq 1 120); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.5
    done
    log "port $1 did not open"; return 1
}

start() { # server → prints its PID
    local s=$1 dir=$RUN/$1 port=${PORT[$1]} http=${HTTP[$1]}
    mkdir -p "$dir/data"
    case $s in
    xmppd)
        mkdir -p "$dir/certs" && cp "$RUN"/certs/* "$dir/certs/"
        fill "$ROOT/bench/xmppd.toml" "$dir" "$port" "$http" >"$dir/xmppd.toml"
        "$XMPPD" -c "$dir/xmppd.toml" serve >>"$dir/out.log" 2>&1 &
        echo $! >"$dir/pid" ;;
    prosody)
        mkdir -p "$dir/certs" && cp "$RUN"/certs/* "$dir/certs/"
        fill "$ROOT/bench/prosody.cfg.lua" "$dir" "$port" "$http" >"$dir/prosody.cfg.lua"
        prosody --config "$dir/prosody.cfg.lua" -F >>"$dir/out.log" 2>&1 &
        echo $! >"$dir/pid" ;;
    ejabberd)
        mkdir -p "$dir/certs" "$dir/spool" "$dir/logs" && cp "$RUN"/certs/* "$dir/certs/"
        fill "$ROOT/bench/ejabberd.yml" "$dir" "$port" "$http" >"$dir/ejabberd.yml"
        fill "$ROOT/bench/ejabberdctl.cfg" "$dir" "$port" "$http" >"$dir/ejabberdctl.cfg"
        cp /etc/ejabberd/inetrc "$dir/" 2>/dev/null || true
        chown -R ejabberd "$dir" 2>/dev/null || true
        su ejabberd -s /bin/sh -c "ulimit -n $(ulimit -n); exec ejabberdctl --config-dir '$dir' \
            --config '$dir/ejabberd.yml' --ctl-config '$dir/ejabberdctl.cfg' --spool '$dir/spool' \
            --logs '$dir/logs' --node bench@localhost foreground" >>"$dir/out.log" 2>&1 &
        wait_port "$port"
        pgrep -f "beam.smp.*bench@localhost" | head -1 >"$dir/pid" ;;
    esac
    wait_port "$port"
    wait_port "$http"
    cat "$dir/pid"
}

stop() {
    local pid; pid=$(cat "$RUN/$1/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
}

bench() { # server pid rep label args… → appends figures to results.tsv; a non-empty label
    local s=$1 pid=$2 rep=$3 label=$4; shift 4 # replaces the figures' prefix (s1. → s1_1000.)
    log "$s rep $rep: $*"
    # WS=1: the sessions run over WebSocket on the server's HTTP port.
    local port=${PORT[$s]} ws=()
    [ -n "${WS:-}" ] && port=${HTTP[$s]} ws=(--tls none --ws "$WS_PATH")
    timeout 1800 "$BENCH" --port "$port" "${ws[@]}" --mech "$MECH" --server-pid "$pid" \
        --sources 8 "$@" \
        2>>"$RUN/$s/bench.log" | tee -a "$RUN/$s/figures.log" |
        awk -v s="$s" -v r="$rep" -v l="$label" '$1 == "figure" { n = $2;
            if (l != "") sub(/^[^.]*/, l, n); print r "\t" s "\t" n "\t" $3 "\t" $4 }' >>"$RESULTS" ||
        log "$s: '$*' failed (see $RUN/$s/bench.log)"
}

# The rows each server's archive holds after s2m (that it archived at all), as a figure; the
# archive is then emptied for the next repetition.
archived() { # server rep
    local db table
    case $1 in
    xmppd) db=$RUN/xmppd/data/xmppd.sqlite table=mam_messages ;;
    prosody) db=$RUN/prosody/data/archive.sqlite table=prosodyarchive ;;
    ejabberd) db=$RUN/ejabberd/ejabberd-archive.db table=archive ;;
    esac
    local n; n=$(sqlite3 "$db" "SELECT COUNT(*) FROM $table" 2>/dev/null || echo 0)
    printf '%s\t%s\ts2mam.archived_rows\t%s\trows\n' "$2" "$1" "$n" >>"$RESULTS"
    log "$1: $n messages archived"
    sqlite3 "$db" "DELETE FROM $table" 2>/dev/null || true
}

# --- accounts and rosters, once per server -----------------------------------------------
max_idle=0; for n in $IDLE_COUNTS $PLAIN_COUNTS; do [ "$n" -gt "$max_idle" ] && max_idle=$n; done
max_room=0; for n in $ROOM_SIZES; do [ "$n" -gt "$max_room" ] && max_room=$n; done
accounts=$(printf '%s\n' "$max_idle" "$CHAT_USERS" "$FANOUT_USERS" "$max_room" | sort -n | tail -1)
hub_users=$((HUBS + HUB_CONTACTS))
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }
has_s3() { has s3 || has s3sm; }   # the rosters of 100, with or without stream management
setup() { # server label args… → appends the set-up figures to results.tsv; a non-empty label
    local s=$1 label=$2; shift 2 # replaces the figures' prefix (register. → register_hubs.)
    timeout 3600 "$BENCH" --port "${PORT[$s]}" --sources 8 "$@" 2>>"$RUN/$s/setup.log" |
        tee -a "$RUN/$s/setup.log" |
        awk -v s="$s" -v l="$label" '$1 == "figure" { n = $2; if (l != "") sub(/^[^.]*/, l, n);
            print 0 "\t" s "\t" n "\t" $3 "\t" $4 }' >>"$RESULTS" ||
        log "$s: set-up '$*' failed (see $RUN/$s/setup.log)"
}
for s in $SERVERS; do
    pid=$(start "$s")
    log "$s: creating $accounts accounts and the rosters of S3"
    setup "$s" "" register --count "$accounts" --concurrency 4
    has s3h && setup "$s" register_hubs --user "$HUB_USER" register --count "$hub_users" \
        --concurrency 4
    if [[ $s == prosody ]] && { has_s3 || has s3h; }; then
        # Prosody does not finish this set-up through the protocol (bench/prosody_rosters.py).
        stop "$s"
        has_s3 && python3 "$ROOT/bench/prosody_rosters.py" "$RUN/$s/data" localhost \
            "$FANOUT_USERS" "$FANOUT_CONTACTS" 'bench{}'
        has s3h && python3 "$ROOT/bench/prosody_rosters.py" "$RUN/$s/data" localhost \
            "$hub_users" "$HUB_CONTACTS" "$HUB_USER" "$HUBS"
        pid=$(start "$s")
    elif [[ $s != prosody ]]; then
        has_s3 && setup "$s" "" --mech "$MECH" rosters --users "$FANOUT_USERS" \
            --contacts "$FANOUT_CONTACTS"
        has s3h && setup "$s" rosters_hubs --mech "$MECH" --user "$HUB_USER" rosters \
            --users "$hub_users" --contacts "$HUB_CONTACTS" --hubs "$HUBS"
    fi
    stop "$s"
done

# --- the scenarios, alternating servers, REPS times ----------------------------------------
for rep in $(seq 1 "$REPS"); do
    for sc in $SCENARIOS; do
        for s in $SERVERS; do
            case $sc in
            s1) for n in $IDLE_COUNTS; do
                    pid=$(start "$s"); sleep 2
                    bench "$s" "$pid" "$rep" "s1_$n" idle --count "$n" --hold 5
                    stop "$s"
                done ;;
            s1p) for n in $PLAIN_COUNTS; do
                    pid=$(TLSREQ=false start "$s"); sleep 2
                    bench "$s" "$pid" "$rep" "s1plain_$n" --tls none idle --count "$n" --hold 5
                    stop "$s"
                done ;;
            s2) pid=$(start "$s"); bench "$s" "$pid" "$rep" "" chat --users "$CHAT_USERS" \
                    --step "$CHAT_STEP" --latency-at "$LATENCY_AT"; stop "$s" ;;
            s2sm) pid=$(start "$s"); bench "$s" "$pid" "$rep" s2sm --sm chat \
                    --users "$CHAT_USERS" --step "$CHAT_STEP" --latency-at "$LATENCY_AT"
                  stop "$s" ;;
            s2m) pid=$(ARCHIVE=true start "$s"); bench "$s" "$pid" "$rep" s2mam chat \
                    --users "$CHAT_USERS" --step "$CHAT_STEP" --latency-at "$LATENCY_AT"
                 stop "$s"; archived "$s" "$rep" ;;
            s1w) for n in $IDLE_COUNTS; do
                    pid=$(start "$s"); sleep 2
                    WS=1 bench "$s" "$pid" "$rep" "s1ws_$n" idle --count "$n" --hold 5
                    stop "$s"
                done ;;
            s2w) pid=$(start "$s"); WS=1 bench "$s" "$pid" "$rep" s2ws chat --users "$CHAT_USERS" \
                    --step "$CHAT_STEP" --latency-at "$LATENCY_AT"; stop "$s" ;;
            s3) pid=$(start "$s"); bench "$s" "$pid" "$rep" "" fanout --users "$FANOUT_USERS" \
                    --contacts "$FANOUT_CONTACTS" --waves 3; stop "$s" ;;
            s3sm) pid=$(start "$s"); bench "$s" "$pid" "$rep" s3sm --sm fanout \
                    --users "$FANOUT_USERS" --contacts "$FANOUT_CONTACTS" --waves 3; stop "$s" ;;
            s3h) pid=$(start "$s"); bench "$s" "$pid" "$rep" s3hubs --user "$HUB_USER" fanout \
                    --users "$hub_users" --contacts "$HUB_CONTACTS" --hubs "$HUBS" --waves 3
                 stop "$s" ;;
            s4) pid=$(start "$s"); bench "$s" "$pid" "$rep" "" logins --count "$LOGINS" \
                    --users "$CHAT_USERS"; stop "$s" ;;
            r) for n in $ROOM_SIZES; do
                    pid=$(start "$s"); sleep 2
                    bench "$s" "$pid" "$rep" "room_$n" rooms --occupants "$n" \
                        --senders "$ROOM_SENDERS" --step "$CHAT_STEP"
                    stop "$s"
                done ;;
            rsm) for n in $ROOM_SIZES; do
                    pid=$(start "$s"); sleep 2
                    bench "$s" "$pid" "$rep" "room_sm_$n" --sm rooms --occupants "$n" \
                        --senders "$ROOM_SENDERS" --step "$CHAT_STEP"
                    stop "$s"
                done ;;
            esac
        done
    done
done

python3 "$ROOT/bench/table.py" "$RESULTS" | tee "$RUN/table.md"
