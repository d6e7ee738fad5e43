#!/usr/bin/env bash
# smoke-test.sh: the two ops containers against the real broker image, as the stack will run them.
#
# Builds the broker image (deployment/docker/redis, BASE_IMAGE=local/redis-base:bookworm from
# `make base-images`) and the redis-ops image (build.sh, offline), then on a private network:
#   - the broker with its /data and /run/redis volumes (ACL user ops, password in ops.password),
#   - a backup container: `schedule --every 3s`, /data and /run/redis mounted READ-ONLY, /backups rw,
#     read-only root, no capabilities, as the redis uid of the broker image,
#   - a metrics container: `metrics --backup-dir /backups` (backups read-only), healthcheck
#     `/redis-ops healthz`,
# checks the one-line logs, the backups (verify), /metrics values following Redis, the Docker health
# status and a clean exit 0 on `docker stop` (SIGTERM). Cleans up everything it created. No password
# is printed: it is generated into a 0600 temp file and only ever read from files.
#
# Usage: deployment/docker/ops/smoke-test.sh      Env: BASE_IMAGE (default local/redis-base:bookworm)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
base=${BASE_IMAGE:-local/redis-base:bookworm}
p=opsmoke-$$
broker_img=$p-redis:test
ops_img=$p-ops:test
work=$(mktemp -d)
trap 'docker rm -f $p-redis $p-backup $p-metrics >/dev/null 2>&1 || true
      docker volume rm $p-data $p-run $p-backups >/dev/null 2>&1 || true
      docker network rm $p-net >/dev/null 2>&1 || true
      docker rmi $broker_img $ops_img-hc $ops_img >/dev/null 2>&1 || true
      rm -rf "$work"' EXIT

say() { printf '[smoke] %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; for c in $p-redis $p-backup $p-metrics; do docker logs --tail 20 $c 2>&1 | sed "s/^/  $c: /" >&2 || true; done; exit 1; }

docker image inspect "$base" >/dev/null 2>&1 || { say "SKIP: base image $base missing (make base-images)"; exit 0; }
say "building the broker image on $base and the redis-ops image (offline)"
docker build -q --build-arg "BASE_IMAGE=$base" -t $broker_img "$root/deployment/docker/redis" >/dev/null
uidgid=$(docker run --rm --entrypoint id $broker_img -u redis):$(docker run --rm --entrypoint id $broker_img -g redis)
say "broker's redis user is $uidgid: the ops image is built for it"
OPS_UID=${uidgid%:*} OPS_GID=${uidgid#*:} "$here/build.sh" $ops_img >/dev/null

# Runtime files as the deployment uploads them: redis.conf, users.acl (hash only), ops.password.
umask 077
head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$work/ops.password"
hash=$(tr -d '\n' <"$work/ops.password" | sha256sum | cut -d' ' -f1)
printf 'user default off\nuser ops on #%s ~* &* +@all\n' "$hash" >"$work/users.acl"
printf 'port 6379\nbind 0.0.0.0\nprotected-mode no\ndir /data\naclfile /run/redis/users.acl\nappendonly yes\nmaxmemory 64mb\nmaxmemory-policy volatile-lru\n' >"$work/redis.conf"
docker network create $p-net >/dev/null
for v in data run backups; do docker volume create $p-$v >/dev/null; done
docker run --rm --user 0 --entrypoint sh -v $p-run:/run/redis -v $p-data:/data -v "$work":/src:ro $broker_img -c \
	'cp /src/redis.conf /src/users.acl /src/ops.password /run/redis/ && chmod 0444 /run/redis/* && chown redis:redis /run/redis /data && chmod 0700 /run/redis /data'

harden=(--read-only --cap-drop ALL --security-opt no-new-privileges:true --network $p-net)
docker run -d --name $p-redis --network-alias redis --user redis -v $p-data:/data -v $p-run:/run/redis "${harden[@]}" \
	$broker_img >/dev/null
rcli() { docker exec $p-redis sh -c 'REDISCLI_AUTH=$(cat /run/redis/ops.password) redis-cli --no-auth-warning --user ops "$@"' rcli "$@"; }
for _ in $(seq 50); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.3; done
[ "$(rcli ping 2>/dev/null)" = PONG ] || fail "broker does not answer PING as ops"
rcli rpush celery t1 t2 t3 >/dev/null
rcli sadd _kombu.binding.celery "$(printf 'celery\006\026\006\026celery')" >/dev/null
rcli hset unacked tag1 x >/dev/null

opsenv=(-e REDIS_ADDR=redis:6379 -e REDIS_USERNAME=ops -e REDIS_PASSWORD_FILE=/run/redis/ops.password)
docker run -d --name $p-backup "${harden[@]}" "${opsenv[@]}" \
	-v $p-data:/data:ro -v $p-run:/run/redis:ro -v $p-backups:/backups \
	$ops_img schedule --every 3s --dir /backups --data-dir /data --retention 720h >/dev/null
# `docker run --health-cmd` is always CMD-SHELL and scratch has no shell: give the metrics container the
# exec-form healthcheck the stack declares (Tests: ["CMD", "/redis-ops", "healthz"]) via a derived image.
printf 'FROM %s\nHEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD ["/redis-ops", "healthz", "--url", "http://127.0.0.1:9121/healthz"]\n' \
	$ops_img | docker build -q -t $ops_img-hc - >/dev/null
docker run -d --name $p-metrics "${harden[@]}" "${opsenv[@]}" -p 127.0.0.1::9121 \
	-v $p-run:/run/redis:ro -v $p-backups:/backups:ro \
	$ops_img-hc metrics --listen :9121 --backup-dir /backups >/dev/null
port=$(docker port $p-metrics 9121/tcp | head -1 | sed 's/.*://')
metric() { curl -fsS "http://127.0.0.1:$port/metrics" | awk -v s="$1" '$1 == s { print $2 }'; }

for _ in $(seq 40); do [ "$(docker logs $p-backup 2>/dev/null | grep -c '^backup ok ')" -ge 2 ] && break; sleep 0.5; done
docker logs $p-backup 2>/dev/null | grep -q '^backup ok file=redis-backup-.*\.rdb size=[0-9]* keys=3 sha256=[0-9a-f]\{64\} deleted=0 ' || fail "no good scheduled backup"
docker logs $p-backup 2>/dev/null | grep '^backup FAILED' && fail "a scheduled run failed"
say "backup container: $(docker logs $p-backup 2>/dev/null | grep -c '^backup ok ') good runs, e.g. $(docker logs $p-backup 2>/dev/null | head -1 | cut -c1-80)..."
docker run --rm -v $p-backups:/backups:ro $ops_img list --dir /backups >"$work/list" || fail "list/verify of the backups"
say "backups verified: $(grep -c ' ok$' "$work/list") ok"

for _ in $(seq 20); do [ "$(docker inspect -f '{{.State.Health.Status}}' $p-metrics)" = healthy ] && break; sleep 0.5; done
[ "$(docker inspect -f '{{.State.Health.Status}}' $p-metrics)" = healthy ] || fail "metrics container not healthy"
[ "$(metric redis_up)" = 1 ] || fail "redis_up != 1"
[ "$(metric 'redis_celery_queue_length{queue="celery"}')" = 3 ] || fail "queue length"
[ "$(metric redis_celery_unacked)" = 1 ] || fail "unacked"
age=$(metric redis_backup_last_success_age_seconds); [ -n "$age" ] || fail "no backup age"
rcli rpush celery t4 t5 >/dev/null
[ "$(metric 'redis_celery_queue_length{queue="celery"}')" = 5 ] || fail "queue growth not seen"
say "metrics container healthy: redis_up 1, queue celery 3 -> 5, unacked 1, backup age ${age}s"

start=$(date +%s)
docker stop $p-backup $p-metrics >/dev/null
for c in backup metrics; do
	code=$(docker inspect -f '{{.State.ExitCode}}' $p-$c)
	[ "$code" = 0 ] || fail "$c exited $code on SIGTERM"
done
say "docker stop (SIGTERM): both exit 0 in $(( $(date +%s) - start ))s"
say "PASS"
