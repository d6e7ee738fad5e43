#!/usr/bin/env bash
# bench.sh: the project's benchmarks (issue 8), one reproducible command. Runs tests/bench and writes
# BENCHMARKS.md (figures with median/min/max, the ratio ours/baseline measured in the same run, the
# machine, the versions and this command). `make bench` runs it. Nothing here asserts a timing.
#
# Sizes and repetitions (environment; defaults in brackets):
#   BENCH_REPS [5 for redis-benchmark and Celery, 3 for the ops tools]: repetitions
#   BENCH_DOCKER_REPS [2]        repetitions of each Docker time-to-healthy case (each is ~30 s)
#   BENCH_REQUESTS [50000]       redis-benchmark requests per test (x10 pipelined)
#   BENCH_CALLGRIND_REQUESTS [20000] requests per test for the instruction counts (callgrind)
#   BENCH_CALLGRIND_DIR [temporary] keep the callgrind dumps there, for callgrind_annotate
#   BENCH_CELERY_TASKS [500]     Celery tasks per repetition
#   BENCH_KEYS [1000000]         keys for redis-ops analyze vs redis-cli --memkeys/--bigkeys
#   BENCH_BACKUP_MB [1024]       dataset for redis-ops backup vs redis-cli --rdb + sha256sum, and for the remote upload/download (OpsRemote: needs /opt/seaweedfs/weed)
#   BENCH_DOCKER_MB [1024]       data in the volume for the Docker time-to-healthy figure
#   BENCH_DEPLOY_REPS [3]        repetitions of each `pulumi up` deploy-time case (real engine only)
#   BENCH_PROGRAM_COUNT [5]      -count of the Go program benchmarks
#   BENCH_ONLY [all]             regexp of benchmark names, e.g. 'Redis|Program' for a quick run
#   BENCH_OUTPUT [BENCHMARKS.md] where to write the report
# Quick run: BENCH_KEYS=100000 BENCH_BACKUP_MB=128 BENCH_DOCKER_MB=128 BENCH_REPS=3 make bench
set -euo pipefail

cd "$(dirname "$0")/../.."
GO="${GO:-go}"
OUTPUT="${BENCH_OUTPUT:-BENCHMARKS.md}"
ONLY="${BENCH_ONLY:-.}"
PROGRAM_COUNT="${BENCH_PROGRAM_COUNT:-5}"

log() { printf '[bench] %s\n' "$*" >&2; }

# GNU time measures peak RSS of the ops tools; redis-benchmark comes with redis-tools.
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v callgrind_control >/dev/null 2>&1 || missing+=(valgrind)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  else
    log "missing: ${missing[*]} (apt-get install ${missing[*]}); the benchmarks that need them will fail or skip"
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export BENCH_RESULTS="$work/results.jsonl"
: >"$BENCH_RESULTS"

# The command line as a user would type it, with the size settings that were given.
settings=""
for v in BENCH_REPS BENCH_CALLGRIND_REQUESTS BENCH_DEPLOY_REPS BENCH_DOCKER_REPS BENCH_REQUESTS BENCH_CELERY_TASKS BENCH_KEYS BENCH_BACKUP_MB BENCH_DOCKER_MB BENCH_PROGRAM_COUNT BENCH_ONLY; do
  if [ -n "${!v:-}" ]; then settings+="$v=${!v} "; fi
done
effective="BENCH_KEYS=${BENCH_KEYS:-1000000} BENCH_BACKUP_MB=${BENCH_BACKUP_MB:-1024} BENCH_DOCKER_MB=${BENCH_DOCKER_MB:-1024} BENCH_REQUESTS=${BENCH_REQUESTS:-50000} BENCH_CALLGRIND_REQUESTS=${BENCH_CALLGRIND_REQUESTS:-20000} BENCH_CELERY_TASKS=${BENCH_CELERY_TASKS:-500} BENCH_REPS=${BENCH_REPS:-5/5/3/3 (redis-benchmark/Celery/analyze/backup)} BENCH_DOCKER_REPS=${BENCH_DOCKER_REPS:-2} BENCH_DEPLOY_REPS=${BENCH_DEPLOY_REPS:-3} BENCH_PROGRAM_COUNT=$PROGRAM_COUNT"
start=$(date +%s)

status=0
selected() { [[ "$1" =~ $ONLY ]]; }

# 4. Program evaluation: ordinary Go benchmarks, -count repetitions each, ours and the baseline in one run.
if selected ProdProgram; then
  log "program benchmarks (-count $PROGRAM_COUNT)"
  "$GO" test -run '^$' -bench '^Benchmark(Prod|Empty)Program$' -benchmem -count "$PROGRAM_COUNT" ./tests/bench \
    2>&1 | tee "$work/program.txt" || status=1
fi

# 1, 2, 3, 5: heavy benchmarks, each run once (-benchtime 1x) and repeating internally (BENCH_REPS),
# alternating ours and the baseline.
heavy=()
for name in RedisThroughput RedisInstructions CeleryThroughput OpsAnalyze OpsBackup OpsRemote TimeToHealthy DeployTime; do
  if selected "$name"; then heavy+=("$name"); fi
done
if [ "${#heavy[@]}" -gt 0 ]; then
  re="^Benchmark($(IFS='|'; echo "${heavy[*]}"))\$"
  log "heavy benchmarks: ${heavy[*]}"
  "$GO" test -run '^$' -bench "$re" -benchtime 1x -timeout 60m ./tests/bench 2>&1 | tee "$work/heavy.txt" || status=1
fi

elapsed=$(( $(date +%s) - start ))
command="${settings}make bench"
"$GO" run ./tests/bench/cmd/benchreport -results "$BENCH_RESULTS" \
  -gotest "$work/program.txt,$work/heavy.txt" \
  -command "$command" -settings "$effective" -elapsed "$((elapsed / 60))m$((elapsed % 60))s" -o "$OUTPUT"
if [ "$status" -ne 0 ]; then
  log "some benchmarks failed; $OUTPUT lists what was not measured"
fi
exit "$status"
