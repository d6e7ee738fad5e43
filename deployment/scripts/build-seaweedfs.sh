#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (an S3-compatible object store) from the Go module proxy, in a throwaway
# module OUTSIDE this repository, for the remote-backup tests (deployment/ops remote_*_test.go,
# tests/dockerstack and tests/engine remote tests). Nothing of it is committed: the tests only detect
# the binary (EMAILCLIENT_WEED, default /opt/seaweedfs/weed).
#
#   bash deployment/scripts/build-seaweedfs.sh      # installs $PREFIX/weed (PREFIX=/opt/seaweedfs)
#
# Idempotent: a binary already built is kept (FORCE_REBUILD=1 rebuilds). The first build takes several
# minutes on 2 cores; with a warm Go build cache (CI on the same machine) it is quick.
set -euo pipefail
PREFIX=${PREFIX:-/opt/seaweedfs}
# The only version the module proxy serves.
VERSION=v0.0.0-20261109003541-7506e5f91cd6
bin=$PREFIX/weed
if [ -x "$bin" ] && [ "${FORCE_REBUILD:-0}" != 1 ] && "$bin" version >/dev/null 2>&1; then
	echo "seaweedfs: $bin already built ($("$bin" version 2>/dev/null | head -1))"
	exit 0
fi
mod=$PREFIX/src
mkdir -p "$PREFIX"
rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
go mod init toolchain/seaweedfs >/dev/null 2>&1
printf '//go:build tools\npackage seaweedfs\nimport _ "github.com/seaweedfs/seaweedfs/weed"\n' >tools.go
go mod edit -require=github.com/seaweedfs/seaweedfs@$VERSION
GOFLAGS=-mod=mod go mod tidy
CGO_ENABLED=0 go build -o "$bin.tmp" github.com/seaweedfs/seaweedfs/weed
mv "$bin.tmp" "$bin"
echo "seaweedfs: built $bin ($("$bin" version 2>/dev/null | head -1))"
