#!/usr/bin/env bash
# deploy/slurm/ for real: a one-node Slurm cluster on 127.0.0.1 (munged, slurmctld, slurmd
# from Debian's slurm-wlm and munge, two fake GPUs as gres), a coordinator with a token,
# the worker array submitted with `sbatch deploy/slurm/shardpress-workers.sbatch`, a
# stories260k job run to SUCCEEDED through those workers, `scancel` of the array (the
# workers stop on SIGTERM), and everything torn down. Exit 77 (ctest: skipped) without
# root or without the packages.
set -uo pipefail
project="$1"
bin="$2"
fixtures="$3"
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "the Slurm test runs daemons as root"
for exe in munged slurmctld slurmd sbatch squeue scancel; do
  command -v "$exe" > /dev/null || skip "$exe is not installed (scripts/install-deps.sh installs slurm-wlm and munge)"
done
d="$(mktemp -d /tmp/shardpress-slurm-XXXXXX)"
host="$(hostname -s)"
export SLURM_CONF="$d/slurm.conf"
cleanup() {
  scancel --quiet --full -u root 2> /dev/null
  for p in slurmd slurmctld munged coordinator; do
    [ -f "$d/$p.pid" ] && kill "$(cat "$d/$p.pid")" 2> /dev/null
  done
  sleep 1
  for p in slurmd slurmctld munged coordinator; do
    [ -f "$d/$p.pid" ] && kill -9 "$(cat "$d/$p.pid")" 2> /dev/null
  done
  rm -rf "$d"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$d"/log/* "$d"/sp/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -20 "$f"; }; done
  exit 1
}
# Waits up to $1 tenths of a second for command $2... to succeed.
wait_until() {
  local n="$1"
  shift
  for _ in $(seq "$n"); do "$@" > /dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$d/state" "$d/spool" "$d/log" "$d/sp/models" "$d/sp/out"
dd if=/dev/urandom of="$d/munge.key" bs=1 count=1024 2> /dev/null
chmod 400 "$d/munge.key"
munged --force --key-file="$d/munge.key" --socket="$d/munge.socket" --pid-file="$d/munged.pid" \
  --log-file="$d/log/munged.log" --seed-file="$d/munge.seed" || fail "munged did not start"
# Two fake GPUs: character devices Slurm hands out as gres (CUDA_VISIBLE_DEVICES 0, 1).
mknod "$d/fake-gpu0" c 1 3 && mknod "$d/fake-gpu1" c 1 3 || fail "mknod"
cat > "$SLURM_CONF" <<CONF
ClusterName=shardpress-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(port)
SlurmdPort=$(port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge.socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/fake-gpu[0-1]\n' "$host" "$d" > "$d/gres.conf"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$host" || fail "slurmd did not start"
wait_until 300 sh -c "sinfo -h -o %t | grep -qx idle" || fail "the node did not become idle: $(sinfo 2>&1)"

# The coordinator (loopback, with a token) and the worker array.
cp -r "$fixtures/stories260k/hf-bf16" "$d/sp/models/stories"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$d/sp/token"
"$bin/shardpress-coordinator" --listen 127.0.0.1:0 --data-dir "$d/sp/state" --model-root "$d/sp/models" \
  --output-root "$d/sp/out" --token-file "$d/sp/token" --lease-ttl 2s --heartbeat-interval 300ms \
  2> "$d/sp/coordinator.log" &
echo $! > "$d/coordinator.pid"
wait_until 100 test -s "$d/sp/state/coordinator.addr" || fail "the coordinator did not start"
export SHARDPRESS_COORDINATOR="$(head -1 "$d/sp/state/coordinator.addr")" SHARDPRESS_TOKEN_FILE="$d/sp/token"
export SHARDPRESS_BIN="$bin" SHARDPRESS_DEVICE=cpu SHARDPRESS_MEMORY=1GiB TMPDIR="$d/tmp"  # worker caches in $d
mkdir -p "$d/tmp"
cd "$d/sp"
array="$(sbatch --parsable --array=0-1 "$project/deploy/slurm/shardpress-workers.sbatch")" || fail "sbatch"
echo "submitted worker array $array"
alive() { [ "$("$bin/shardpress" workers -o json | grep -c '"alive": true')" -eq 2 ]; }
wait_until 300 alive || fail "two workers did not register: $("$bin/shardpress" workers 2>&1)"
grep -q "GPU 0" shardpress-worker-"${array}"_0.log && grep -q "GPU 1" shardpress-worker-"${array}"_1.log ||
  fail "each array task should get its own GPU"
printf 'name: slurm\nmodel: %s\noutput: %s\n' "$d/sp/models/stories" "$d/sp/out/slurm" > job.yaml
timeout 120 "$bin/shardpress" submit job.yaml --wait > submit.log 2>&1 || fail "the job did not succeed: $(cat submit.log)"
status="$("$bin/shardpress" status slurm -o json)"
echo "$status" | grep -q '"state": "SUCCEEDED"' || fail "job state: $status"
workers_used="$(echo "$status" | grep -o '"worker_id": "[^"]*"' | sort -u | wc -l)"
echo "job slurm: SUCCEEDED on $workers_used worker(s) of the array"
"$bin/shardpress" verify "$d/sp/out/slurm" > verify.log 2>&1 || fail "verify: $(cat verify.log)"

# scancel: SIGTERM; each worker says it stops, the array leaves the queue.
scancel "$array" || fail "scancel"
gone() { [ -z "$(squeue -h -j "$array" 2> /dev/null)" ]; }
wait_until 300 gone || fail "the array is still queued: $(squeue)"
wait_until 100 sh -c "grep -q 'stopped' shardpress-worker-${array}_0.log && grep -q 'stopped' shardpress-worker-${array}_1.log" ||
  fail "the workers did not stop on SIGTERM"
pgrep -f "shardpress-worker.*--cache-dir $d/" > /dev/null && fail "a worker process outlived scancel"
echo "ok: sbatch'd workers ran the job; scancel stopped them"
exit 0
