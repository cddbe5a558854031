#!/usr/bin/env bash
# A single-node Slurm cluster on localhost for the integration test:
#   cluster.sh start DIR   writes DIR/slurm.conf, starts munged (if needed), slurmctld and slurmd,
#                          and waits until the node is idle; prints the SLURM_CONF path
#   cluster.sh stop DIR    shuts the daemons down
# Exits 77 (skip) with a reason on stderr where Slurm cannot run here.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?state directory}")
conf="$dir/slurm.conf"
if [ "$cmd" = stop ]; then
  pids=$(cat "$dir/slurmctld.pid" "$dir/slurmd.pid" 2>/dev/null || true)
  SLURM_CONF="$conf" scontrol shutdown >/dev/null 2>&1 || true
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  # Wait until both daemons are gone, so nothing writes into DIR while it is removed.
  for _ in $(seq 1 40); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && exit 0
    sleep 0.25
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  exit 0
fi
for tool in slurmctld slurmd munged sbatch sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "slurm: $tool not installed (Debian: slurm-wlm, munge)" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "slurm: the test cluster needs root to start slurmd" >&2; exit 77; }
[ -r /etc/munge/munge.key ] || { echo "slurm: /etc/munge/munge.key is missing" >&2; exit 77; }
mkdir -p "$dir/state" "$dir/spool"
host=$(hostname -s)
# Ports away from the defaults, so a real cluster on this host is left alone, and chosen per
# start, so two test runs at once (two checkouts, a container beside the host) never talk to each
# other's daemons.
ctld_port=$((20000 + ($$ % 10000) * 2)); slurmd_port=$((ctld_port + 1))
cat >"$conf" <<CONF
ClusterName=flatbench-test
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! munge -n >/dev/null 2>&1; then
  mkdir -p /run/munge
  munged --force >/dev/null 2>&1 || { echo "slurm: munged would not start" >&2; exit 77; }
fi
export SLURM_CONF="$conf"
# Whatever fails from here on stops the daemons this start began: a skipped test leaves none
# running (a leftover slurmctld once kept every later run from reaching idle).
give_up() {
  echo "slurm: $1" >&2
  bash "$0" stop "$dir"
  exit 77
}
slurmctld -f "$conf" >/dev/null 2>&1 || give_up "slurmctld would not start (see $dir/slurmctld.log)"
slurmd -f "$conf" >/dev/null 2>&1 || give_up "slurmd would not start (see $dir/slurmd.log)"
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "$conf"; exit 0; fi
  sleep 0.5
done
give_up "the node never became idle (see $dir/slurmctld.log, $dir/slurmd.log)"
