#!/bin/sh
# docker-entrypoint.sh: start redis-server with the configuration the deployment uploaded.
#
# Usage: docker-entrypoint.sh [CONFIG_FILE] [--directive value ...]
#   CONFIG_FILE defaults to $REDIS_RUN_DIR/redis.conf (REDIS_RUN_DIR defaults to /run/redis).
#        docker-entrypoint.sh node [CONFIG_FILE] [--directive value ...]
#   runs a data node of a Sentinel topology from a private copy of CONFIG_FILE in the data directory,
#   so that a role the Sentinels gave it (REPLICAOF + CONFIG REWRITE after a failover) survives
#   restarts; when the uploaded file changes, the copy is made again from it, keeping the learned
#   role (its replicaof line, or "replicaof no one").
#        docker-entrypoint.sh sentinel [--directive value ...]
#   runs a Sentinel from $REDIS_RUN_DIR/sentinel.conf. Sentinel rewrites its config file, so it runs
#   from a private copy in the data directory; when the uploaded file changes, the copy is made again
#   from it, keeping what Sentinel learned for the same master name (the current primary, known
#   replicas and Sentinels, epochs and its own id), so a change after a failover does not undo it.
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

# refresh SRC COPY LEARNED: make COPY (mode 0600) from the uploaded SRC when it is missing or SRC
# changed since (a digest in COPY.source-sha256), keeping the lines the function LEARNED prints from
# the previous COPY (given the new content on stdin).
refresh() {
	src=$1 copy=$2 learned=$3
	sum=$(sha256sum "$src" | cut -d ' ' -f 1)
	if [ -s "$copy" ] && [ "$(cat "$copy.source-sha256" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	if [ -s "$copy" ]; then
		(umask 077 && "$learned" "$copy" <"$src" >"$copy.new") || fail "cannot write $copy.new"
		echo "docker-entrypoint: $copy made again from the changed $src, keeping what was learned"
	else
		(umask 077 && cat "$src" >"$copy.new") || fail "cannot write $copy.new"
		echo "docker-entrypoint: $copy initialised from $src"
	fi
	mv "$copy.new" "$copy" || fail "cannot write $copy"
	printf '%s\n' "$sum" >"$copy.source-sha256"
}

# node_learned OLD: the new config (stdin) without its replicaof lines, then the role OLD ended with.
node_learned() {
	grep -Ev '^(replicaof|slaveof) ' || true
	role=$(grep -E '^(replicaof|slaveof) ' "$1" | tail -n 1 | sed 's/^slaveof /replicaof /')
	echo "${role:-replicaof no one}"
}

# sentinel_learned OLD: the new sentinel.conf (stdin) with the current primary and the learned state
# of OLD, when OLD monitors the same master name; else the new config alone.
sentinel_learned() {
	new=$(cat)
	name=$(printf '%s\n' "$new" | sed -n 's/^sentinel monitor \([^ ]*\) .*$/\1/p')
	at=$(sed -n "s/^sentinel monitor $name \([^ ]*\) \([0-9]*\) .*$/\1 \2/p" "$1")
	if [ -z "$name" ] || [ -z "$at" ]; then
		printf '%s\n' "$new"
		return 0
	fi
	printf '%s\n' "$new" | sed "s/^sentinel monitor $name [^ ]* [0-9]* /sentinel monitor $name $at /"
	grep -E "^sentinel (myid |current-epoch |(config-epoch|leader-epoch|known-replica|known-sentinel) $name )" "$1" || true
}

[ "$(id -u)" != 0 ] || fail "refusing to run as root; run the container as the redis user"
[ -d "$data_dir" ] && [ -w "$data_dir" ] || fail "data directory $data_dir is not writable by uid $(id -u); give it to that user (e.g. chown $(id -u):$(id -g) on the host path)"

if [ "${1:-}" = sentinel ]; then
	shift
	src=$run_dir/sentinel.conf
	state=$data_dir/sentinel.conf
	[ -s "$src" ] || fail "Sentinel config $src is missing or empty (the deployment uploads it into $run_dir)"
	[ -s "$run_dir/sentinel.password" ] || fail "password file $run_dir/sentinel.password is missing or empty: the healthcheck could not authenticate"
	refresh "$src" "$state" sentinel_learned
	echo "docker-entrypoint: starting redis-server --sentinel with $state as uid $(id -u)"
	exec redis-server "$state" --sentinel "$@"
fi

node=no
if [ "${1:-}" = node ]; then
	node=yes
	shift
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

if [ "$node" = yes ]; then
	shift
	refresh "$conf" "$data_dir/redis.conf" node_learned
	conf=$data_dir/redis.conf
	set -- "$conf" "$@"
	echo "docker-entrypoint: data node role: $(grep -E '^(replicaof|slaveof) ' "$conf" | tail -n 1 | cut -d ' ' -f 1-3 || true)"
fi

echo "docker-entrypoint: starting redis-server with $conf as uid $(id -u)"
exec redis-server "$@"
