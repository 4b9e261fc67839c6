#!/usr/bin/env bash
# A throw-away single-node SLURM on 127.0.0.1 for the cluster integration test
# (tests/test_slurm.py).  Usage: start_slurm.sh start | stop | status
#
# Needs root (it installs Debian packages and runs the daemons).  No systemd is
# assumed: the daemons are started directly and stopped by their pid files.
# Idempotent: `start` on a running cluster only re-checks it.  A SLURM that this
# script did not start (other daemons, or a controller that answers) is never
# reconfigured: `start` uses it when it is healthy and says why not otherwise.
# `status` exits 0 only for a healthy cluster (controller answers, partition
# `debug` exists and runs a job step) and otherwise prints why.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
CONF_DIR=/etc/slurm
SPOOL=/var/spool/slurm
LOG_DIR=/var/log/slurm
PID_DIR=/run/slurm
PARTITION=debug
READY_TIMEOUT_S=40
# A controller that does not answer within this is down: fail now, not after a test's timeout.
CONTROLLER_TIMEOUT_S=10

die() { echo "start_slurm.sh: $*" >&2; exit 1; }

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    [[ -z "$missing" ]] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install $missing yourself"
    echo "installing:" $missing
    # --no-install-recommends: the recommends (and the slurm-wlm metapackage) pull
    # in far more than a one-node test cluster needs.  Quiet, but errors still show.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || die "apt-get install $missing failed"
}

start_munge() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        # --force: a stale socket from an earlier container life is fine to replace.
        runuser -u munge -- munged --force
    fi
}

memory_mb() { awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo; }

write_slurm_conf() {
    install -d "$CONF_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOG_DIR" "$PID_DIR"
    # RealMemory a little under MemTotal: slurmd drains a node that reports less
    # memory than configured.
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by tests/cluster/start_slurm.sh: one node, no accounting database.
ClusterName=testcluster
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$PID_DIR/slurmctld.pid
SlurmdPidFile=$PID_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups in a container: track processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Memory is enforced by polling each job's RSS every second and killing jobs
# that exceed their request (the retry test relies on it).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
# Finished jobs stay visible to squeue for an hour: without slurmdbd,
# squeue is how the executor plugin (and the test, after a long run) learns
# a job's final state.
MinJobAge=3600
ReturnToService=2
KillWait=5
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(( $(memory_mb) - 256 )) State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

ours_running() { pid_alive "$PID_DIR/slurmctld.pid" || pid_alive "$PID_DIR/slurmd.pid"; }

controller_answers() {
    command -v scontrol >/dev/null && timeout "$CONTROLLER_TIMEOUT_S" scontrol ping 2>/dev/null | grep -q "is UP"
}

# slurmctld or slurmd processes that the pid files of this script do not name.
foreign_daemons() {
    local pid ours
    ours=" $( { cat "$PID_DIR/slurmctld.pid" "$PID_DIR/slurmd.pid" 2>/dev/null || true; } | tr '\n' ' ') "
    for pid in $(pgrep -x slurmctld || true) $(pgrep -x slurmd || true); do
        [[ "$ours" == *" $pid "* ]] || echo "$pid"
    done
}

# Why the running cluster cannot take the test's jobs (empty when it can).
unhealthy_reason() {
    controller_answers || { echo "the controller does not answer 'scontrol ping' within ${CONTROLLER_TIMEOUT_S}s"; return; }
    [[ -n "$(sinfo --noheader --partition "$PARTITION" --format=%P 2>/dev/null)" ]] \
        || { echo "it has no partition '$PARTITION' (the test profile submits there)"; return; }
    timeout 30 srun --quiet --partition "$PARTITION" --time=1 true 2>/dev/null \
        || echo "'srun true' on partition '$PARTITION' did not finish within 30s"
}

start_daemons() {
    pid_alive "$PID_DIR/slurmctld.pid" || slurmctld
    pid_alive "$PID_DIR/slurmd.pid" || slurmd -N localhost
}

wait_until_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT_S)) grace=$((SECONDS + 5))
    until controller_answers; do
        # a slurmctld that died (after the few seconds it takes to write its pid file) will not answer
        if ((SECONDS >= deadline)) || { ((SECONDS >= grace)) && ! pid_alive "$PID_DIR/slurmctld.pid"; }; then
            tail -n 5 "$LOG_DIR/slurmctld.log" 2>/dev/null || true
            die "slurmctld does not answer 'scontrol ping' (logs in $LOG_DIR)"
        fi
        sleep 1
    done
    until timeout 10 srun --quiet --time=1 true 2>/dev/null; do
        # A node that registered while the controller was still starting is
        # left DOWN; bring it back instead of waiting for the timeout.
        scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
        if ((SECONDS >= deadline)); then
            sinfo 2>&1 || true
            tail -n 5 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" 2>/dev/null || true
            die "SLURM did not run 'srun true' within ${READY_TIMEOUT_S}s (logs in $LOG_DIR)"
        fi
        sleep 1
    done
}

start() {
    local foreign reason
    foreign=$(foreign_daemons)
    if ! ours_running && { [[ -n "$foreign" ]] || controller_answers; }; then
        # Never rewrite the slurm.conf of daemons this script did not start.
        reason=$(unhealthy_reason)
        [[ -z "$reason" ]] || die "a SLURM not started by this script is running (pids: ${foreign:-none here}), but $reason; not touching it"
        echo "using the SLURM already running: $(sinfo --noheader --partition "$PARTITION" --format='partition %P, %D node(s), %c CPUs')"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts daemons)"
    install_packages
    start_munge
    if ! pid_alive "$PID_DIR/slurmctld.pid"; then
        write_slurm_conf
    fi
    start_daemons
    wait_until_ready
    echo "SLURM is up: partition '$PARTITION', $(nproc) CPUs, $(memory_mb) MB on localhost"
}

stop_daemon() {
    local pidfile=$1 pid
    pid_alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid"
    # Bounded wait so a stuck daemon cannot hang CI.
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    stop_daemon "$PID_DIR/slurmd.pid"
    stop_daemon "$PID_DIR/slurmctld.pid"
    stop_daemon /run/munge/munged.pid
    echo "SLURM stopped"
}

status() {
    local reason
    if ! ours_running && [[ -z "$(foreign_daemons)" ]] && ! controller_answers; then
        echo "SLURM is not running"
        return 3
    fi
    reason=$(unhealthy_reason)
    if [[ -n "$reason" ]]; then
        echo "SLURM is running but not usable: $reason"
        return 4
    fi
    sinfo
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start | stop | status" ;;
esac
