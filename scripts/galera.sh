#!/usr/bin/env bash
# A 3-node MariaDB Galera cluster on loopback, for the cluster tests and for trying CDP on one
# (docs/DEPLOYMENT.md, "Galera"). Each node has its own data directory, port and socket under
# CDP_GALERA_DIR; root has no password. Runs as root (mariadbd --user=root), as CI does.
#
#   scripts/galera.sh start           a fresh cluster: node 1 bootstrapped (--wsrep-new-cluster),
#                                     nodes 2 and 3 joined by rsync SST; returns once all are Synced
#   scripts/galera.sh stop            shut every node down (SIGKILL after 60 s) and delete nothing
#   scripts/galera.sh kill NODE       SIGKILL one node (a crash: nothing flushed)
#   scripts/galera.sh restart NODE    recover the node's position (--wsrep-recover), start it at that
#                                     position so it rejoins by IST, return once it is Synced
#   scripts/galera.sh status          one line per node: port, pid, state, cluster size
#   scripts/galera.sh ports           the client ports, comma-separated host:port (CDP_DATABASE_HOSTS)
#
# Environment: CDP_GALERA_DIR (default /tmp/cdp-galera; `start` deletes a previous cluster there,
# only if it made it), CDP_GALERA_PORT (node 1's client port, default 3311; node n's is +n-1),
# CDP_GALERA_GCOMM_PORT (node 1's group port, default 4567; node n's is +10(n-1), its IST port +1,
# its SST (rsync) port +2). Memory is kept small (64 MB buffer pool and gcache per node).
set -euo pipefail

DIR=${CDP_GALERA_DIR:-/tmp/cdp-galera}
PORT=${CDP_GALERA_PORT:-3311}
GCOMM_PORT=${CDP_GALERA_GCOMM_PORT:-4567}
NODES=3
PROVIDER=/usr/lib/galera/libgalera_smm.so
MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}
WAIT_SECONDS=${CDP_GALERA_WAIT_SECONDS:-120}
MARKER=.cdp-galera

die() { echo "galera.sh: $*" >&2; exit 1; }
node_dir() { echo "$DIR/node$1"; }
client_port() { echo $((PORT + $1 - 1)); }
gcomm_port() { echo $((GCOMM_PORT + 10 * ($1 - 1))); }
check_node() { [[ $1 =~ ^[1-3]$ ]] || die "NODE must be 1, 2 or 3, not '$1'"; }

cluster_address() {
    local n addresses=()
    for n in $(seq 1 $NODES); do addresses+=("127.0.0.1:$(gcomm_port "$n")"); done
    (IFS=,; echo "gcomm://${addresses[*]}")
}

write_config() {  # write_config NODE
    local n=$1 d g
    d=$(node_dir "$n"); g=$(gcomm_port "$n")
    mkdir -p "$d/data" "$d/tmp"
    cat >"$d/my.cnf" <<EOF
[mysqld]
user=root
datadir=$d/data
# Its own: mariadbd deletes every "#sql*" file in its tmpdir when it starts, so a node restarted
# with /tmp would remove the temporary tables of other servers' running queries.
tmpdir=$d/tmp
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
log-error=$d/error.log
port=$(client_port "$n")
bind-address=127.0.0.1
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
max_connections=300
performance_schema=OFF
skip-name-resolve
# Small: three nodes, gunicorns and workers share one 2-core machine.
innodb_buffer_pool_size=64M
innodb_log_file_size=48M
# Durability comes from the other nodes holding every committed write set; a node that
# crashes rejoins by IST from them.
innodb_flush_log_at_trx_commit=2
key_buffer_size=8M
# Galera's requirements.
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=cdp
wsrep_cluster_address=$(cluster_address)
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$g
# Detect a killed node within about two seconds (defaults: five to fifteen), so the others'
# commits do not wait on it for long; gcache.recover lets a crashed node rejoin by IST.
wsrep_provider_options="base_host=127.0.0.1;base_port=$g;gmcast.listen_addr=tcp://127.0.0.1:$g;ist.recv_addr=127.0.0.1:$((g + 1));gcache.size=64M;gcache.recover=yes;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT4S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$((g + 2))
wsrep_slave_threads=2
EOF
}

node_pid() {  # the running mariadbd's pid, or nothing
    local pid_file
    pid_file="$(node_dir "$1")/mysqld.pid"
    [[ -s $pid_file ]] || return 0
    local pid
    pid=$(<"$pid_file")
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

query() {  # query NODE SQL: one value, or nothing if the node does not answer
    mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$(client_port "$1")" -uroot \
        --connect-timeout=2 -N -B -e "$2" 2>/dev/null || true
}

wsrep_state() { query "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" | cut -f2; }

wait_synced() {  # wait_synced NODE PID
    local n=$1 pid=$2 deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "node $n exited; the end of $(node_dir "$n")/error.log:
$(tail -n 30 "$(node_dir "$n")/error.log")"
        if [[ $(wsrep_state "$n") == Synced && $(query "$n" "SHOW STATUS LIKE 'wsrep_ready'" | cut -f2) == ON ]]; then
            return 0
        fi
        sleep 0.3
    done
    die "node $n is not Synced after $WAIT_SECONDS s (state: $(wsrep_state "$n")); see $(node_dir "$n")/error.log"
}

# wsrep_sst_rsync starts the joiner's rsync daemon with no uid, which as root means "nobody"
# (mariadbd puts its own directories first on the SST script's PATH, so no wrapper can add
# one). So a joiner's data directory belongs to nobody while rsync writes it; mariadbd, run as
# root, reads and writes it all the same.
let_rsync_write() { chown -R nobody: "$(node_dir "$1")/data"; }

launch() {  # launch NODE [mariadbd options...]: start in the background, print the pid
    local n=$1; shift
    local d
    d=$(node_dir "$n")
    setsid "$MARIADBD" --defaults-file="$d/my.cnf" "$@" </dev/null >>"$d/console.log" 2>&1 &
    echo $!
}

start() {
    [[ -x $MARIADBD ]] || die "$MARIADBD not found (apt-get install mariadb-server)"
    [[ -f $PROVIDER ]] || die "$PROVIDER not found (apt-get install galera-4)"
    command -v rsync >/dev/null || die "rsync not found (apt-get install rsync)"
    local n
    for n in $(seq 1 $NODES); do
        [[ -z $(node_pid "$n") ]] || die "node $n is running; scripts/galera.sh stop first"
    done
    if [[ -e $DIR ]]; then
        if [[ -e $DIR/$MARKER ]]; then
            rm -rf "$DIR"
        elif [[ -n $(ls -A "$DIR") ]]; then
            die "$DIR exists and was not made by this script; set CDP_GALERA_DIR elsewhere"
        fi
    fi
    mkdir -p "$DIR" && touch "$DIR/$MARKER"
    for n in $(seq 1 $NODES); do write_config "$n"; done
    # Only node 1 is initialised; the others receive its data by SST when they join.
    mariadb-install-db --defaults-file="$(node_dir 1)/my.cnf" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$(node_dir 1)/install.log" 2>&1 \
        || die "mariadb-install-db failed: $(tail -n 20 "$(node_dir 1)/install.log")"
    wait_synced 1 "$(launch 1 --wsrep-new-cluster)"
    # One joiner at a time: a donor serves one SST.
    for n in $(seq 2 $NODES); do let_rsync_write "$n"; wait_synced "$n" "$(launch "$n")"; done
    status
}

stop() {
    local n pid
    for n in $(seq $NODES -1 1); do
        pid=$(node_pid "$n")
        [[ -n $pid ]] || continue
        kill -TERM "$pid"
        for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    done
}

kill_node() {
    check_node "$1"
    local pid
    pid=$(node_pid "$1")
    [[ -n $pid ]] || die "node $1 is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

restart_node() {
    check_node "$1"
    local n=$1 d position
    d=$(node_dir "$n")
    [[ -z $(node_pid "$n") ]] || die "node $n is running"
    # After a crash grastate.dat says seqno -1; the real position is in InnoDB. Starting there
    # lets a donor send only the missing write sets (IST) instead of the whole data (SST).
    "$MARIADBD" --defaults-file="$d/my.cnf" --wsrep-recover --log-error="$d/recover.log" >/dev/null 2>&1 \
        || die "--wsrep-recover failed: $(tail -n 20 "$d/recover.log")"
    position=$(grep -o 'Recovered position: .*' "$d/recover.log" | tail -n 1 | awk '{print $3}')
    [[ -n $position ]] || die "no recovered position in $d/recover.log"
    let_rsync_write "$n"  # should the donor's gcache no longer hold the missing write sets (SST)
    wait_synced "$n" "$(launch "$n" --wsrep-start-position="$position")"
    echo "node $n rejoined at $position"
}

status() {
    local n pid
    for n in $(seq 1 $NODES); do
        pid=$(node_pid "$n")
        if [[ -z $pid ]]; then
            echo "node $n port $(client_port "$n"): down"
        else
            echo "node $n port $(client_port "$n") pid $pid: $(wsrep_state "$n"), cluster size $(query "$n" "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)"
        fi
    done
}

ports() {
    local n hosts=()
    for n in $(seq 1 $NODES); do hosts+=("127.0.0.1:$(client_port "$n")"); done
    (IFS=,; echo "${hosts[*]}")
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    kill) kill_node "${2:-}" ;;
    restart) restart_node "${2:-}" ;;
    status) status ;;
    ports) ports ;;
    *) die "usage: $0 start|stop|kill NODE|restart NODE|status|ports" ;;
esac
