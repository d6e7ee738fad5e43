#!/usr/bin/env bash
# deploy.sh ACTION STACK [ARGS]: preview, up, destroy a stack, or show its outputs (output STACK [--show-secrets NAME]);
# pin-names STACK writes into Pulumi.STACK.yaml the Docker names of a stack deployed before names were scoped by
# stack (and docker:host, the engine this shell reaches, when unset), so that its next up replaces nothing.
#
# Backend: PULUMI_BACKEND_URL when set (s3://, file://, https://api.pulumi.com); else Pulumi Cloud when
# PULUMI_ACCESS_TOKEN is set; else local file state in .pulumi-state/ at the repository root (gitignored).
# Secrets of self-managed backends are encrypted with PULUMI_CONFIG_PASSPHRASE(_FILE), or with a
# passphrase generated on first use into .pulumi-state/passphrase (mode 0600): keep that file.
# It also stages the redis-ops binary (deployment/docker/ops/build.sh) for operations.build prebuilt.
set -euo pipefail

action=${1:-up}
stack=${2:-dev}
shift $(($# < 2 ? $# : 2))
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

case "$action" in up | preview | destroy | output | pin-names) ;; *) echo "deploy.sh: unknown action '$action'; use up, preview, destroy, output or pin-names" >&2; exit 2 ;; esac

if ! command -v pulumi >/dev/null 2>&1; then
	echo "deploy.sh: the Pulumi CLI is not installed; install it (https://www.pulumi.com/docs/install/), e.g.:" >&2
	echo "  curl -fsSL https://get.pulumi.com | sh   # then open a new shell" >&2
	exit 1
fi
if [ "$action" = up ] || [ "$action" = preview ] || [ "$action" = destroy ]; then
	# The engine the stack deploys to (docker:host in its stack file), not the shell's.
	host=$(sed -n 's/^ *docker:host: *//p' "$root/Pulumi.$stack.yaml" 2>/dev/null | head -1)
	export DOCKER_HOST=${host:-${DOCKER_HOST:-}}
	[ -n "$DOCKER_HOST" ] || unset DOCKER_HOST
fi
if [ "$action" != output ] && [ "$action" != pin-names ] && ! docker info >/dev/null 2>&1; then
	echo "deploy.sh: no Docker engine reachable (docker info failed); install Docker Engine (e.g. apt-get install docker.io) and start it" >&2
	exit 1
fi

state="$root/.pulumi-state"
secrets=(--secrets-provider passphrase)
if [ -z "${PULUMI_BACKEND_URL:-}" ] && [ -n "${PULUMI_ACCESS_TOKEN:-}" ]; then
	export PULUMI_BACKEND_URL=https://api.pulumi.com
	secrets=() # Pulumi Cloud encrypts secrets itself
else
	mkdir -p "$state"
	export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$state}
	if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
		if [ ! -s "$state/passphrase" ]; then
			(umask 077 && head -c 32 /dev/urandom | base64 >"$state/passphrase")
			echo "deploy.sh: generated the state passphrase in $state/passphrase (keep it)"
		fi
		export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
	fi
fi

echo "deploy.sh: stack $stack, backend $PULUMI_BACKEND_URL" >&2
if [ "$action" = output ]; then
	exec pulumi stack output --stack "$stack" "$@"
fi
if [ "$action" = pin-names ]; then
	profile=$(pulumi config get --stack "$stack" profile 2>/dev/null || echo "$stack")
	go run ./deployment/cmd/redis-config --legacy-names "$profile" | while read -r key value; do
		if pulumi config get --stack "$stack" --path "$key" >/dev/null 2>&1; then
			echo "deploy.sh: $key is set already; kept"
		else
			pulumi config set --stack "$stack" --path "$key" "$value" && echo "deploy.sh: pinned $key: $value"
		fi
	done
	if ! pulumi config get --stack "$stack" docker:host >/dev/null 2>&1; then
		host=${DOCKER_HOST:-$(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || echo unix:///var/run/docker.sock)}
		pulumi config set --stack "$stack" docker:host "$host" && echo "deploy.sh: pinned docker:host: $host (the engine this shell reaches)"
	fi
	exit 0
fi
bash "$root/deployment/docker/ops/build.sh"
pulumi stack select --create "${secrets[@]}" "$stack"
case "$action" in
preview) pulumi preview --stack "$stack" ;;
up)
	# One run of the program: `up` prints each change as the engine makes it, then the outputs (secrets
	# hidden). A preview first would run the program a second time to show a plan `--yes` does not wait
	# on; `make preview` shows the plan without applying it.
	pulumi up --yes --skip-preview --stack "$stack"
	;;
destroy) pulumi destroy --yes --stack "$stack" ;;
esac
