#!/bin/sh
# docker-entrypoint.sh: start redis-server with the configuration the deployment uploaded.
#
# Usage: docker-entrypoint.sh [CONFIG_FILE] [--directive value ...]
#   CONFIG_FILE defaults to $REDIS_RUN_DIR/redis.conf (REDIS_RUN_DIR defaults to /run/redis).
#        docker-entrypoint.sh sentinel [--directive value ...]
#   runs a Sentinel from $REDIS_RUN_DIR/sentinel.conf. Sentinel rewrites its config file, so it runs
#   from a private copy in the data directory, made again only when the uploaded file changes (what
#   Sentinel learned, e.g. the current primary after a failover, survives restarts).
#
# It checks what Redis needs before starting, so that a broken deployment fails with one clear line
# instead of a Redis that runs without authentication: the config file, the ACL file and the
# healthcheck's password file must exist and be non-empty, and the data directory must be writable
# by the current (non-root) user. It never prints, exports or passes a password: redis-server reads
# only password hashes from the ACL file named in the config.
set -eu

run_dir=${REDIS_RUN_DIR:-/run/redis}
data_dir=${REDIS_DATA_DIR:-/data}

fail() {
	echo "docker-entrypoint: error: $*" >&2
	exit 1
}

[ "$(id -u)" != 0 ] || fail "refusing to run as root; run the container as the redis user"
[ -d "$data_dir" ] && [ -w "$data_dir" ] || fail "data directory $data_dir is not writable by uid $(id -u); give it to that user (e.g. chown $(id -u):$(id -g) on the host path)"

if [ "${1:-}" = sentinel ]; then
	shift
	src=$run_dir/sentinel.conf
	state=$data_dir/sentinel.conf
	stamp=$data_dir/sentinel.conf.source-sha256
	[ -s "$src" ] || fail "Sentinel config $src is missing or empty (the deployment uploads it into $run_dir)"
	[ -s "$run_dir/sentinel.password" ] || fail "password file $run_dir/sentinel.password is missing or empty: the healthcheck could not authenticate"
	sum=$(sha256sum "$src" | cut -d ' ' -f 1)
	if [ ! -s "$state" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
		(umask 077 && cat "$src" >"$state.new" && mv "$state.new" "$state") || fail "cannot write $state"
		printf '%s\n' "$sum" >"$stamp"
		echo "docker-entrypoint: Sentinel config initialised from $src"
	fi
	echo "docker-entrypoint: starting redis-server --sentinel with $state as uid $(id -u)"
	exec redis-server "$state" --sentinel "$@"
fi

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- "$run_dir/redis.conf" "$@"
fi
conf=$1

[ -s "$conf" ] || fail "config file $conf is missing or empty (the deployment uploads it into $run_dir)"
[ -s "$run_dir/users.acl" ] || fail "ACL file $run_dir/users.acl is missing or empty: no password is configured, refusing to start Redis without authentication"
[ -s "$run_dir/ops.password" ] || fail "password file $run_dir/ops.password is missing or empty: the healthcheck could not authenticate"
grep -q '^aclfile ' "$conf" || fail "config file $conf has no aclfile directive: refusing to start Redis without authentication"
for inc in $(sed -n 's/^include \(.*\)$/\1/p' "$conf"); do
	[ -s "$inc" ] || fail "included file $inc is missing or empty (the deployment uploads it into $run_dir)"
done

echo "docker-entrypoint: starting redis-server with $conf as uid $(id -u)"
exec redis-server "$@"
