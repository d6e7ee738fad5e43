#!/bin/sh
# redis-healthcheck: the container's health verdict, one line on stdout, exit 0 (healthy) or 1.
#
# - Authenticates as the monitor user (read-only server state: PING, INFO) with the password from a
#   file (REDISCLI_AUTH, never argv).
# - Healthy only on an exact PONG: NOAUTH, WRONGPASS or an unreachable server are unhealthy
#   (redis-cli itself exits 0 on NOAUTH).
# - LOADING (dataset still loading) reports "starting" and exits 1: Docker's start period covers it.
# - Unhealthy when Redis can no longer persist (last BGSAVE or AOF write failed): it then refuses
#   writes.
# - A Sentinel (its config is $REDIS_RUN_DIR/sentinel.conf) is healthy when it answers PONG with its
#   password ($REDIS_RUN_DIR/sentinel.password) and SENTINEL CKQUORUM confirms a quorum for its primary.
# Environment: REDIS_RUN_DIR (default /run/redis), REDIS_HEALTHCHECK_USER (default monitor),
# REDIS_HEALTHCHECK_PASSWORD_FILE (default $REDIS_RUN_DIR/monitor.password), REDIS_HEALTHCHECK_HOST
# (default 127.0.0.1), REDIS_HEALTHCHECK_PORT (default: the port of $REDIS_RUN_DIR/redis.conf, else 6379).
set -u

run_dir=${REDIS_RUN_DIR:-/run/redis}
user=${REDIS_HEALTHCHECK_USER:-monitor}
pw_file=${REDIS_HEALTHCHECK_PASSWORD_FILE:-$run_dir/monitor.password}
host=${REDIS_HEALTHCHECK_HOST:-127.0.0.1}
port=${REDIS_HEALTHCHECK_PORT:-}
if [ -z "$port" ]; then
	port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$run_dir/redis.conf" 2>/dev/null)
	port=${port:-6379}
fi

unhealthy() {
	echo "unhealthy: $*"
	exit 1
}

if [ -s "$run_dir/sentinel.conf" ]; then
	[ -s "$run_dir/sentinel.password" ] || unhealthy "password file $run_dir/sentinel.password is missing or empty"
	REDISCLI_AUTH=$(cat "$run_dir/sentinel.password") || unhealthy "cannot read $run_dir/sentinel.password"
	export REDISCLI_AUTH
	sport=${REDIS_HEALTHCHECK_PORT:-$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$run_dir/sentinel.conf")}
	master=$(sed -n 's/^sentinel monitor \([^ ]*\) .*$/\1/p' "$run_dir/sentinel.conf")
	reply=$(redis-cli --no-auth-warning -h "$host" -p "${sport:-26379}" ping 2>&1)
	[ "$reply" = PONG ] || unhealthy "Sentinel PING answered: $(printf '%s' "$reply" | head -n 1)"
	reply=$(redis-cli --no-auth-warning -h "$host" -p "${sport:-26379}" sentinel ckquorum "$master" 2>&1)
	case "$reply" in
	OK*) echo "healthy: Sentinel PONG, quorum ok for $master"; exit 0 ;;
	*) unhealthy "SENTINEL CKQUORUM $master answered: $(printf '%s' "$reply" | head -n 1)" ;;
	esac
fi

[ -s "$pw_file" ] || unhealthy "password file $pw_file is missing or empty"
REDISCLI_AUTH=$(cat "$pw_file") || unhealthy "cannot read $pw_file"
export REDISCLI_AUTH

reply=$(redis-cli --no-auth-warning --user "$user" -h "$host" -p "$port" ping 2>&1)
case "$reply" in
PONG) ;;
LOADING*) echo "starting: Redis is loading its dataset"; exit 1 ;;
MISCONF*) unhealthy "Redis cannot persist to disk and refuses writes (MISCONF): check disk space and permissions of the data directory" ;;
*) unhealthy "PING answered: $(printf '%s' "$reply" | head -n 1)" ;;
esac

info=$(redis-cli --no-auth-warning --user "$user" -h "$host" -p "$port" info persistence 2>&1) ||
	unhealthy "INFO persistence failed"
case "$info" in
*rdb_last_bgsave_status:err*) unhealthy "last RDB save failed, Redis cannot persist and refuses writes: check disk space and permissions of the data directory" ;;
*aof_last_write_status:err*) unhealthy "last AOF write failed, Redis cannot persist and refuses writes: check disk space and permissions of the data directory" ;;
*aof_last_write_status:ok* | *rdb_last_bgsave_status:ok*) ;;
*) unhealthy "INFO persistence answered: $(printf '%s' "$info" | head -n 1)" ;;
esac
echo "healthy: PONG, persistence ok"
exit 0
