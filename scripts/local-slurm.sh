#!/usr/bin/env bash
# local-slurm.sh: a throwaway one-node Slurm cluster on localhost, for shallow's
# Slurm tests (tests/slurm.rs) and for trying `--slurm N --submit` by hand.
#
# Debian 12's slurmctld, slurmd, slurm-client and munge, run as root, without
# systemd or cgroups. Everything lives under $LOCAL_SLURM_DIR; the daemons run
# in the foreground under setsid and are tracked by the PIDs recorded at launch,
# and only those are ever signalled. Clients find the cluster through
# SLURM_CONF (see `env`); nothing is written outside $LOCAL_SLURM_DIR.
#
#   local-slurm.sh install           apt-get the packages (start does it when they are missing)
#   local-slurm.sh start             start munged, slurmctld and slurmd; wait until the node is idle
#   local-slurm.sh stop              cancel the jobs, stop the daemons, remove $LOCAL_SLURM_DIR
#   local-slurm.sh wait JOBID [SECS] wait until a job (or array) has left the queue; fail unless
#                                    every task COMPLETED
#   local-slurm.sh logs              the daemons' logs (print them when a test fails)
#   local-slurm.sh env               prints `export SLURM_CONF=...`
#
# Environment: LOCAL_SLURM_DIR [${TMPDIR:-/tmp}/shallow-slurm], LOCAL_SLURM_PORT
# (slurmctld; slurmd uses the next) [6817], LOCAL_SLURM_TIMEOUT seconds [60].
#
# Why it is configured this way (each was seen failing otherwise): select/cons_tres
# with CR_Core (plain cons_tres gives each job the whole node's memory, so tasks
# run one at a time); RealMemory at 90% of `slurmd -C` (else the node is INVAL);
# the node named after `hostname -s` with 127.0.0.1 addresses (no name
# resolution needed); proctrack/linuxproc and task/none (the cgroup plugins
# drain the node without systemd); a private munged with its socket folder 0755.
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-${TMPDIR:-/tmp}/shallow-slurm}
PORT=${LOCAL_SLURM_PORT:-6817}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
CONF=$DIR/etc/slurm.conf
SOCK=$DIR/munge/munge.sock
PACKAGES=(slurmctld slurmd slurm-client munge)
export SLURM_CONF=$CONF
export PATH=$PATH:/usr/sbin:/sbin

log() { echo "local-slurm: $*" >&2; }
die() { echo "local-slurm: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root: the daemons run as root"

node_name() {
    local n
    n=$(hostname -s 2>/dev/null || cut -d. -f1 /proc/sys/kernel/hostname)
    [ -n "$n" ] || die "cannot tell this machine's short host name"
    echo "$n"
}

have_binaries() {
    local b
    for b in slurmctld slurmd sbatch squeue scontrol scancel sinfo munged munge unmunge; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

cmd_install() {
    have_binaries && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${PACKAGES[*]} by hand"
    # Keep the packages' maintainer scripts from starting system services.
    local policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
    fi
    local rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } >&2 || rc=$?
    [ "$policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || die "apt-get install ${PACKAGES[*]} failed (exit $rc)"
    have_binaries || die "${PACKAGES[*]} installed, but their programs are still missing"
}

# alive PID NAME: PID is a running (not zombie) process called NAME.
alive() {
    local stat
    [ -n "$1" ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

recorded() { tr -dc '0-9' < "$DIR/run/$1.pid" 2>/dev/null || true; }

launch() {
    local name=$1; shift
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    echo $! > "$DIR/run/$name.pid"
    sleep 0.1
    alive "$(recorded "$name")" "$name" || fail "$name exited at once"
}

stop_daemon() {
    local name=$1 grace=$2 pid i
    pid=$(recorded "$name")
    if alive "$pid" "$name"; then
        for ((i = 0; i < grace * 10; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
        alive "$pid" "$name" && kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < TIMEOUT * 10; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
        if alive "$pid" "$name"; then
            log "$name ($pid) ignored SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            alive "$pid" "$name" && die "$name ($pid) survives SIGKILL"
        fi
    fi
    rm -f "$DIR/run/$name.pid"
}

cmd_logs() {
    local f
    for f in "$DIR"/log/*; do
        [ -r "$f" ] || continue
        echo "===== $f (last 40 lines) ====="
        tail -n 40 "$f"
    done
}

fail() {
    log "$*"
    cmd_logs >&2 || true
    cmd_stop >/dev/null 2>&1 || true
    die "start failed: $*"
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

write_conf() {
    local hw field cpus boards sockets cores threads mem
    hw=$(slurmd -C 2>/dev/null | head -n1)
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
    cpus=$(field CPUs) boards=$(field Boards) sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore) mem=$(field RealMemory)
    [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot read the hardware from 'slurmd -C': $hw"
    mem=$((mem * 9 / 10)); [ "$mem" -ge 1 ] || mem=1
    cat > "$CONF" <<EOF
# written by shallow's scripts/local-slurm.sh ($DIR)
ClusterName=shallowci
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
MinJobAge=600
KillWait=5
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

cmd_start() {
    have_binaries || cmd_install
    cmd_stop >/dev/null 2>&1 || true   # leftovers of a crashed run
    local p
    for p in "$PORT" "$((PORT + 1))"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "port $p on 127.0.0.1 is in use: choose another with LOCAL_SLURM_PORT"
        fi
    done
    mkdir -p "$DIR"/{etc,state,spool,log,run,munge}
    chmod 755 "$DIR" "$DIR/munge"
    write_conf
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --force --keyfile="$DIR/munge/munge.key" >/dev/null 2>&1
    else
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$DIR/munge/munge.key"
    launch munged munged --foreground --socket="$SOCK" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    local i
    for ((i = 0; i < TIMEOUT * 10; i++)); do [ -S "$SOCK" ] && break; sleep 0.1; done
    munge -S "$SOCK" -n 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 || fail "munge credentials do not round-trip"
    launch slurmctld slurmctld -D -i -f "$CONF"
    for ((i = 0; i < TIMEOUT * 10; i++)); do ctld_up && break; sleep 0.1; done
    ctld_up || fail "slurmctld does not answer scontrol ping"
    launch slurmd slurmd -D -f "$CONF" -N "$NODE"
    local st=""
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        st=$(node_state)
        [ "$st" = idle ] && break
        sleep 0.1
    done
    [ "$st" = idle ] || fail "node $NODE is '${st:-unknown}', not idle"
    log "up: node $NODE, SLURM_CONF=$CONF"
}

cmd_stop() {
    local i grace=0
    if [ -r "$CONF" ] && ctld_up; then
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
            scancel --partition=ci 2>/dev/null || true
            for ((i = 0; i < TIMEOUT * 10; i++)); do
                [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
        scontrol shutdown >/dev/null 2>&1 && grace=10
    fi
    stop_daemon slurmd "$grace"
    stop_daemon slurmctld "$grace"
    stop_daemon munged 0
    case "$DIR" in /|/tmp|/var|/var/tmp|/etc|/usr|/root|"") die "refusing to remove LOCAL_SLURM_DIR=$DIR" ;; esac
    rm -rf "$DIR"
}

cmd_wait() {
    local job=${1:?usage: local-slurm.sh wait JOBID [SECS]} limit=${2:-600} i rows
    job=${job%%;*}
    for ((i = 0; i < limit * 5; i++)); do
        [ -z "$(squeue -h -j "$job" -o %i 2>/dev/null)" ] && break
        sleep 0.2
    done
    [ -z "$(squeue -h -j "$job" -o %i 2>/dev/null)" ] || die "job $job has not finished after ${limit} s"
    # One line per task: its JobId, ArrayTaskId, JobState and ExitCode fields.
    rows=$(scontrol show job -o "$job" 2>/dev/null | awk '{ o = "";
        for (i = 1; i <= NF; i++) if ($i ~ /^(JobId|ArrayTaskId|JobState|ExitCode)=/) o = o " " $i;
        if (o != "") print substr(o, 2) }')
    [ -n "$rows" ] || die "job $job is unknown to slurmctld"
    echo "$rows"
    if grep -v 'JobState=COMPLETED' <<<"$rows" | grep -q .; then die "job $job: not every task COMPLETED"; fi
}

NODE=$(node_name)
case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    wait) shift; cmd_wait "$@" ;;
    logs) cmd_logs ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop|wait JOBID [SECS]|logs|env" >&2; exit 2 ;;
esac
