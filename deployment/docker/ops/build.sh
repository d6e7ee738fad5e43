#!/usr/bin/env bash
# build.sh: stage the redis-ops image's root filesystem and (optionally) build the image, offline.
#
#   deployment/docker/ops/build.sh                  # stage rootfs/ only (what the Pulumi program needs)
#   deployment/docker/ops/build.sh redis-ops:local  # stage, then docker build -t redis-ops:local
#
# Stages rootfs/redis-ops (static: CGO_ENABLED=0, -trimpath, so the same source gives the same bytes and
# the image is only rebuilt when the code changes) and an empty rootfs/backups (mode 0750). Needs only
# the Go toolchain that already compiles the Pulumi program; no registry, no network beyond the module
# cache. Env: OPS_UID, OPS_GID (default 999:1000, the redis user of redis:7-alpine), GOARCH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tag=${1:-}

# Kept between runs: go build leaves an up-to-date rootfs/redis-ops as it is (no link, ~0.3 s where a
# fresh link takes seconds; make up runs this every time). Anything else staged there goes.
mkdir -p "$here/rootfs"
find "$here/rootfs" -mindepth 1 -maxdepth 1 ! -name redis-ops ! -name backups -exec rm -rf {} +
mkdir -p "$here/rootfs/backups"
find "$here/rootfs/backups" -mindepth 1 -delete
chmod 0750 "$here/rootfs/backups"
(
	cd "$root"
	CGO_ENABLED=0 GOOS=linux GOARCH="${GOARCH:-$(go env GOARCH)}" GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags="-s -w" -o "$here/rootfs/redis-ops" ./deployment/cmd/redis-ops
)
# A scratch image has no loader or libc: refuse a dynamically linked binary.
if command -v readelf >/dev/null 2>&1 && readelf -l "$here/rootfs/redis-ops" | grep -q 'Requesting program interpreter'; then
	echo "build.sh: rootfs/redis-ops is dynamically linked; it cannot run FROM scratch" >&2
	exit 1
fi
echo "build.sh: staged $here/rootfs (redis-ops $(du -h "$here/rootfs/redis-ops" | cut -f1), static)" >&2

if [ -n "$tag" ]; then
	docker build --build-arg "OPS_UID=${OPS_UID:-999}" --build-arg "OPS_GID=${OPS_GID:-1000}" -t "$tag" "$here"
fi
