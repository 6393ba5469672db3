#!/usr/bin/env bash
# A throwaway one-node SLURM cluster (slurmctld + slurmd + munge) on this machine, for the
# project's SLURM tests and CI. The node advertises one fake GPU (gres with File=/dev/null):
# jobs that ask for --gpus=1 schedule and run on the CPU. The cluster keeps accounting
# (slurmdbd on a private MariaDB server) and enforces limits: user root's association has
# MaxSubmitJobs=$FMDENOISE_SLURM_MAX_SUBMIT (default 4), so a submission beyond it is refused,
# as on sites that cap the jobs a user may queue.
#
#   tests/slurm/cluster.sh start    install slurm-wlm, slurmdbd, munge, mariadb-server if
#                                   missing (apt, needs root), start
#   tests/slurm/cluster.sh stop     stop the daemons started by `start`
#   tests/slurm/cluster.sh status   sinfo of the running cluster
#
# State, spool, logs, the database and the generated slurm.conf/slurmdbd.conf live in
# $FMDENOISE_SLURM_DIR (default /tmp/fmdenoise-slurm); `start` prints `export SLURM_CONF=...`.
set -euo pipefail

DIR=${FMDENOISE_SLURM_DIR:-/tmp/fmdenoise-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

die() { echo "cluster.sh: $*" >&2; exit 1; }

PACKAGES="slurm-wlm slurmdbd munge mariadb-server"
DB_PORT=${FMDENOISE_SLURM_DB_PORT:-3307}
DB_PASS=fmdenoise-test

install() {
    if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null \
        && command -v munged >/dev/null && command -v mariadbd >/dev/null; then return; fi
    [ "$(id -u)" = 0 ] || die "some of $PACKAGES missing and not root: install them (apt-get install $PACKAGES)"
    command -v apt-get >/dev/null || die "some of $PACKAGES missing and no apt-get: install them by hand"
    echo "cluster.sh: installing $PACKAGES" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what did not come up within $seconds s (logs in $DIR/log, $DIR/db)"
}

start_database() {  # a private MariaDB server for slurmdbd, on 127.0.0.1:$DB_PORT
    mkdir -p "$DIR/db/data"
    chown -R mysql:mysql "$DIR/db"
    mariadb-install-db --user=mysql --datadir="$DIR/db/data" \
        --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1
    # detached, its output to a file: a caller that captures ours must not wait for it
    setsid su -s /bin/sh mysql -c "exec /usr/sbin/mariadbd --datadir=$DIR/db/data \
        --socket=$DIR/db/mysql.sock --port=$DB_PORT --bind-address=127.0.0.1 \
        --pid-file=$DIR/db/mysql.pid --log-error=$DIR/db/mysql.err --skip-log-bin" \
        </dev/null >"$DIR/log/mariadbd.out" 2>&1 &
    wait_for 30 "MariaDB" mariadb --socket="$DIR/db/mysql.sock" -u root -e "select 1"
    mariadb --socket="$DIR/db/mysql.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_accounting() {  # slurmdbd, then the cluster, account and user with their limits
    cat >"$DIR/slurmdbd.conf" <<DBD
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
DBD
    chown slurm:slurm "$DIR/slurmdbd.conf"
    chmod 600 "$DIR/slurmdbd.conf"
    SLURM_CONF=$CONF slurmdbd
    wait_for 30 "slurmdbd" env SLURM_CONF="$CONF" sacctmgr -n show cluster
    SLURM_CONF=$CONF sacctmgr -i add cluster local >/dev/null
    # the cluster comes with account root and user root in it: cap that user's queue
    SLURM_CONF=$CONF sacctmgr -i modify user where name=root \
        set MaxSubmitJobs="${FMDENOISE_SLURM_MAX_SUBMIT:-4}" >/dev/null
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key missing (reinstall munge)"
    su -s /bin/sh munge -c /usr/sbin/munged
}

write_conf() {
    mkdir -p "$DIR"/{state,spool,log,run}
    chown -R slurm:slurm "$DIR"/{state,spool,log,run}
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo) * 8 / 10 ))
    cat >"$CONF" <<CONF
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it may start again (121 s by default): short
# here so that the node-failure test does not sit idle
AuthInfo=cred_expire=20
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations,limits
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
GresTypes=gpu
DefMemPerCPU=1024
KillWait=10
NodeName=$HOST CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
MaxArraySize=${FMDENOISE_SLURM_MAX_ARRAY_SIZE:-5}
MaxJobCount=${FMDENOISE_SLURM_MAX_JOB_COUNT:-10000}
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$HOST MaxTime=3 State=UP
CONF
    echo "NodeName=$HOST Name=gpu File=/dev/null" >"$DIR/gres.conf"
    # srun inside a job step reads the default path, not SLURM_CONF: point it at ours
    mkdir -p /etc/slurm
    if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
        die "/etc/slurm/slurm.conf exists (a real cluster?): not touching it"
    fi
    ln -sfn "$CONF" /etc/slurm/slurm.conf
}

start() {
    install
    if [ -f "$DIR/run/slurmctld.pid" ] && kill -0 "$(cat "$DIR/run/slurmctld.pid")" 2>/dev/null; then
        echo "cluster.sh: already running ($CONF)" >&2
    else
        # a cluster that died without `stop` (a rebooted or recycled machine) leaves its
        # directory behind: an initialised database whose user exists already. Start clean.
        if [ -e "$DIR" ]; then
            echo "cluster.sh: clearing the leftovers of a cluster that was not stopped ($DIR)" >&2
            stop
        fi
        start_munge
        write_conf
        start_database
        start_accounting
        slurmctld -f "$CONF"
        slurmd -f "$CONF"
    fi
    for _ in $(seq 60); do
        if SLURM_CONF=$CONF sinfo -h -o %t 2>/dev/null | grep -q idle; then
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    SLURM_CONF=$CONF sinfo >&2 || true
    tail -20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle within 60 s (logs above)"
}

stop() {
    for d in slurmd slurmctld slurmdbd; do
        local pidfile=$DIR/run/$d.pid
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    if [ -f "$DIR/db/mysql.pid" ]; then
        kill "$(cat "$DIR/db/mysql.pid")" 2>/dev/null || true
    fi
    for _ in $(seq 20); do
        pgrep -f "slurm(ctld|d) -f $CONF" >/dev/null || pgrep -f "mariadbd --datadir=$DIR" >/dev/null \
            || pgrep -x slurmdbd >/dev/null || break
        sleep 0.5
    done
    kill_job_leftovers
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$CONF" ]; then
        rm -f /etc/slurm/slurm.conf
    fi
    rm -rf "$DIR"
}

# Processes of this cluster's jobs that outlive its daemons: without cgroups (proctrack/pgid)
# slurmd cannot follow a job's process out of its group, and a job killed by the node-down
# test left its `snakemake --mode remote` waiting for ever; a job still running at `stop`
# leaves its slurmstepd. Matched by this cluster's SLURM_CONF in the environment and either a
# job's SLURM_JOB_ID or the name slurmstepd (a shell that exported SLURM_CONF is spared).
kill_job_leftovers() {
    local p pid env keep=" $$ $PPID "
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $keep == *" $pid "* ]] && continue
        env=$(tr '\0' '\n' 2>/dev/null <"$p/environ") || continue  # gone, or not ours to read
        grep -qx "SLURM_CONF=$CONF" <<<"$env" || continue
        if grep -q '^SLURM_JOB_ID=' <<<"$env" || [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ]; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    # no configuration: no cluster (sinfo without one tries a configless lookup and can wait
    # for minutes); a controller that does not answer: no cluster either
    status) [ -f "$CONF" ] || die "no cluster here ($CONF is missing)"
            SLURM_CONF=$CONF timeout 30 sinfo ;;
    *) die "usage: $0 start|stop|status" ;;
esac
