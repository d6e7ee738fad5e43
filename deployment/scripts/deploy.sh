#!/usr/bin/env bash
# deploy.sh ACTION STACK: preview, up or destroy a stack with local file state (no Pulumi Cloud account).
#
# State lives in .pulumi-state/ at the repository root (gitignored). Secrets in it are encrypted with a
# passphrase generated on first use into .pulumi-state/passphrase (mode 0600); keep that file, or set
# PULUMI_CONFIG_PASSPHRASE(_FILE) yourself. Set PULUMI_BACKEND_URL to use another backend (s3://, Pulumi Cloud).
set -euo pipefail

action=${1:-up}
stack=${2:-dev}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

case "$action" in up | preview | destroy) ;; *) echo "deploy.sh: unknown action '$action'; use up, preview or destroy" >&2; exit 2 ;; esac

if ! command -v pulumi >/dev/null 2>&1; then
	echo "deploy.sh: the Pulumi CLI is not installed; install it (https://www.pulumi.com/docs/install/), e.g.:" >&2
	echo "  curl -fsSL https://get.pulumi.com | sh   # then open a new shell" >&2
	exit 1
fi
if ! docker info >/dev/null 2>&1; then
	echo "deploy.sh: no Docker engine reachable (docker info failed); install Docker Engine (e.g. apt-get install docker.io) and start it" >&2
	exit 1
fi

state="$root/.pulumi-state"
mkdir -p "$state"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$state}
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	if [ ! -s "$state/passphrase" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 >"$state/passphrase")
		echo "deploy.sh: generated the state passphrase in $state/passphrase (keep it)"
	fi
	export PULUMI_CONFIG_PASSPHRASE_FILE="$state/passphrase"
fi

echo "deploy.sh: stack $stack, backend $PULUMI_BACKEND_URL"
pulumi stack select --create --secrets-provider passphrase "$stack"
case "$action" in
preview) pulumi preview --stack "$stack" ;;
up)
	pulumi preview --stack "$stack"
	pulumi up --yes --stack "$stack"
	pulumi stack output --stack "$stack"
	;;
destroy) pulumi destroy --yes --stack "$stack" ;;
esac
