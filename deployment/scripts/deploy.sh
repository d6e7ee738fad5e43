#!/usr/bin/env bash
# deploy.sh ACTION STACK [ARGS]: preview, up, destroy a stack, or show its outputs (output STACK [--show-secrets NAME]).
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

case "$action" in up | preview | destroy | output) ;; *) echo "deploy.sh: unknown action '$action'; use up, preview, destroy or output" >&2; exit 2 ;; esac

if ! command -v pulumi >/dev/null 2>&1; then
	echo "deploy.sh: the Pulumi CLI is not installed; install it (https://www.pulumi.com/docs/install/), e.g.:" >&2
	echo "  curl -fsSL https://get.pulumi.com | sh   # then open a new shell" >&2
	exit 1
fi
if [ "$action" != output ] && ! docker info >/dev/null 2>&1; then
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
bash "$root/deployment/docker/ops/build.sh"
pulumi stack select --create "${secrets[@]}" "$stack"
case "$action" in
preview) pulumi preview --stack "$stack" ;;
up)
	pulumi preview --stack "$stack"
	pulumi up --yes --stack "$stack"
	pulumi stack output --stack "$stack"
	;;
destroy) pulumi destroy --yes --stack "$stack" ;;
esac
