#!/usr/bin/env bash
# A single-node SLURM (slurmctld + slurmd + munge) for the cluster tests, started by hand: no
# systemd needed, root on Debian/Ubuntu.
#
#   .ci/slurm.sh start    install slurm-wlm and munge if missing, start the daemons, wait until
#                         the node is idle and a one-minute test job ran; idempotent
#   .ci/slurm.sh stop     cancel this cluster's jobs and stop the daemons it started
#   .ci/slurm.sh status   sinfo and squeue of this cluster
#
# Settings (environment):
#   WIRING_SLURM_DIR     state, spool, logs, config  (default: ${TMPDIR:-/tmp}/wiring-slurm)
#   WIRING_SLURM_PORT    slurmctld port; slurmd listens on the next one (default 16817)
#   WIRING_SLURM_CPUS    CPUs the node offers        (default: nproc)
#   WIRING_SLURM_MEM_MB  memory the node offers, MB  (default: total - 2000, at least 1024)
#
# After `start`, `source "$WIRING_SLURM_DIR/env.sh"` (it sets SLURM_CONF) in the shell that
# submits jobs. The daemons are stopped by their pid files; munged is stopped only if this script
# started it (another user of the machine may share it).
set -euo pipefail

S=${WIRING_SLURM_DIR:-${TMPDIR:-/tmp}/wiring-slurm}
PORT=${WIRING_SLURM_PORT:-16817}
MUNGE_PID=/run/munge/munged.pid

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

log() { echo "slurm.sh: $*" >&2; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || { log "slurm-wlm and munge are missing and installing them needs root"; exit 1; }
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -q slurm-wlm munge >/dev/null
}

start_munge() {
    if alive "$MUNGE_PID"; then
        log "munged already running (pid $(cat $MUNGE_PID)); using it"
    else
        [ -s /etc/munge/munge.key ] || {
            mungekey --create --force
            chown munge:munge /etc/munge/munge.key
            chmod 400 /etc/munge/munge.key
        }
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
        touch "$S/run/munged.ours"
    fi
    munge -n | unmunge >/dev/null
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=${WIRING_SLURM_CPUS:-$(nproc)}
    mem=${WIRING_SLURM_MEM_MB:-$(( $(free -m | awk '/^Mem:/{print $2}') - 2000 ))}
    [ "$mem" -ge 1024 ] || mem=1024
    cat > "$S/etc/slurm.conf.new" <<EOF
ClusterName=wiringci
SlurmctldHost=$host
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=60
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$S/etc/slurm.conf.new" "$S/etc/slurm.conf"
}

start() {
    install
    mkdir -p "$S"/{etc,state,spool,log,run}
    export SLURM_CONF=$S/etc/slurm.conf
    echo "export SLURM_CONF=$SLURM_CONF" > "$S/env.sh"
    start_munge
    if alive "$S/run/slurmctld.pid" && alive "$S/run/slurmd.pid"; then
        log "already running ($S)"
    else
        stop_daemons
        write_conf
        # -c: a clean start, no jobs or node state left from an earlier run of this directory
        slurmctld -c -f "$SLURM_CONF"
        slurmd -f "$SLURM_CONF"
    fi
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -o %T 2>/dev/null || true)
        [ "$state" = idle ] && break
        sleep 0.5
    done
    if [ "$state" != idle ]; then
        log "the node did not become idle (state: '${state:-no answer}'); logs in $S/log"
        tail -n 20 "$S/log/slurmctld.log" "$S/log/slurmd.log" >&2 || true
        exit 1
    fi
    srun -t 1 -n 1 true
    log "up: SLURM_CONF=$SLURM_CONF"
}

stop_daemons() {
    local name pid
    for name in slurmd slurmctld; do
        if alive "$S/run/$name.pid"; then
            pid=$(cat "$S/run/$name.pid")
            kill "$pid"
            for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$S/run/$name.pid"
    done
}

stop() {
    [ -d "$S" ] || return 0
    export SLURM_CONF=$S/etc/slurm.conf
    if alive "$S/run/slurmctld.pid"; then
        scancel --full -u "$(id -un)" 2>/dev/null || true
        for _ in $(seq 20); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    stop_daemons
    if [ -e "$S/run/munged.ours" ]; then
        if alive "$MUNGE_PID"; then kill "$(cat $MUNGE_PID)" || true; fi
        rm -f "$S/run/munged.ours"
    fi
    log "stopped ($S)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        export SLURM_CONF=$S/etc/slurm.conf
        sinfo; squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
