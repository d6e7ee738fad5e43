#!/usr/bin/env bash
# Build the local, registry-free base images used by the Docker-engine test tier (BRIEF §5 tier 4).
#
#   local/redis-base:bookworm     Debian bookworm minbase + redis-server redis-tools
#   local/celery-base:bookworm    Debian bookworm minbase + python3-celery python3-redis
#   local/redis-busybox:bookworm  a busybox userland, as redis:7-alpine has (the stacks' default base):
#                                 Debian's busybox-static is /bin/sh and every tool (no dash, bash or
#                                 coreutils), the redis binaries of local/redis-base in /usr/local/bin
#                                 with the libraries ldd names, and alpine's redis user (999, group 1000)
#
# The Debian images are debootstrap trees from the machine's configured Debian mirror (read from the apt
# sources at run time), the busybox one a tree assembled from local/redis-base and the busybox-static
# package (apt-get download, about 15 s), each imported with `docker import`. Images are cached by
# tag: an existing tag is skipped, so the script is idempotent. `docker import` images carry no CMD/ENV/USER/ENTRYPOINT;
# Dockerfiles built on them set what they need.
#
# Usage: build-base-images.sh [redis|celery|busybox|all]   (default: all)
# Env:   BASE_SUITE      Debian suite (default: bookworm)
#        BASE_MIRROR     override the mirror URL (default: first Debian mirror in the apt sources)
#        FORCE_REBUILD=1 rebuild even if the tag exists
set -euo pipefail

SUITE="${BASE_SUITE:-bookworm}"
WHAT="${1:-all}"

log() { printf '[build-base-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$WHAT" in
  redis|celery|busybox|all) ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown argument '$WHAT' (expected redis, celery, busybox or all)" ;;
esac

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "debootstrap needs root (run as root or install sudo)"
  SUDO="sudo"
fi

# find_mirror prints the URI of the first enabled apt source (deb822 *.sources or one-line *.list)
# that serves the suite $SUITE. Nothing is hard-coded: the host name comes from this machine's config.
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources)
        # deb822: stanzas separated by blank lines; keys Types, URIs, Suites, Enabled.
        awk -v suite="$SUITE" '
          function flush(   n, i, s, u) {
            if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") {
              n = split(suites, s, /[ \t]+/)
              for (i = 1; i <= n; i++) if (s[i] == suite) { split(uris, u, /[ \t]+/); print u[1]; exit }
            }
            types = ""; uris = ""; suites = ""; enabled = ""
          }
          /^[ \t]*$/ { flush(); next }
          /^[ \t]*#/ { next }
          {
            key = tolower($1); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types:") types = val
            else if (key == "uris:") uris = val
            else if (key == "suites:") suites = val
            else if (key == "enabled:") enabled = tolower(val)
          }
          END { flush() }
        ' "$f" ;;
      *)
        # one-line format: deb [options] URI SUITE COMPONENTS...
        awk -v suite="$SUITE" '
          $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
            if ($(i+1) == suite) { print $i; exit }
          }
        ' "$f" ;;
    esac
  done | head -n1
}

ensure_debootstrap() {
  if command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ]; then return 0; fi
  log "installing debootstrap (apt-get)"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap >/dev/null || die "could not install debootstrap"
}

TMPDIRS=()
cleanup() {
  local d
  for d in "${TMPDIRS[@]:-}"; do
    if [ -n "$d" ] && [ -d "$d" ]; then $SUDO rm -rf --one-file-system "$d" || true; fi
  done
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }

# build_image TAG PACKAGES CHECK_SCRIPT [ASSEMBLE]: the tree is a debootstrap of PACKAGES, or, when
# the function ASSEMBLE is given, what ASSEMBLE TREE WORK makes in TREE (WORK: a scratch directory).
# CHECK_SCRIPT runs in the tree with its own /bin/sh.
build_image() {
  local tag="$1" pkgs="$2" check="$3" assemble="${4:-}"
  if [ "${FORCE_REBUILD:-0}" != "1" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag: already present, skipping (FORCE_REBUILD=1 to rebuild)"
    return 0
  fi
  local work t0 t1 t2 t3
  work="$(mktemp -d "${TMPDIR:-/tmp}/base-image.XXXXXX")"
  TMPDIRS+=("$work")
  local root="$work/rootfs"
  t0=$(now)
  if [ -n "$assemble" ]; then
    log "$tag: $assemble"
    "$assemble" "$root" "$work"
  else
    debootstrap_tree "$tag" "$pkgs" "$root" "$work"
  fi
  t1=$(now)
  log "$tag: tree made in $((t1 - t0))s"

  # Sanity checks inside the tree (chroot: no engine needed).
  if ! $SUDO chroot "$root" /bin/sh -ec "$check" >&2; then
    die "$tag: sanity check failed inside the tree"
  fi

  # Keep the image small: apt lists and caches, docs, man pages, logs of the bootstrap.
  $SUDO rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/archives/partial/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/debootstrap
  # Device nodes, proc and sys are provided by the runtime.
  $SUDO find "$root/dev" -mindepth 1 -delete 2>/dev/null || true
  $SUDO find "$root/proc" "$root/sys" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null || true
  local size
  size="$($SUDO du -sh "$root" | cut -f1)"
  t2=$(now)

  log "$tag: docker import ($size tree)"
  if ! $SUDO tar --numeric-owner -C "$root" -c . | docker import \
        --message "${assemble:-debootstrap --variant=minbase $SUITE + $pkgs}" - "$tag" >/dev/null; then
    die "$tag: docker import failed"
  fi
  t3=$(now)
  log "$tag: imported in $((t3 - t2))s (total $((t3 - t0))s)"
  $SUDO rm -rf --one-file-system "$work"
}

# debootstrap_tree TAG PACKAGES TREE WORK: a minbase of $SUITE with PACKAGES in TREE.
debootstrap_tree() {
  local tag="$1" pkgs="$2" root="$3" work="$4"
  ensure_debootstrap
  local mirror="${BASE_MIRROR:-}"
  [ -n "$mirror" ] || mirror="$(find_mirror || true)"
  [ -n "$mirror" ] || die "no apt source for suite '$SUITE' found in /etc/apt/sources.list{,.d/*} (set BASE_MIRROR)"
  local keyring_opt=()
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && keyring_opt=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  log "$tag: debootstrap --variant=minbase $SUITE (+ ${pkgs// /,}) from the configured mirror"
  if ! $SUDO debootstrap --variant=minbase "${keyring_opt[@]}" --include="${pkgs// /,}" \
        "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2 || true
    [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
    die "$tag: debootstrap failed"
  fi
}

REDIS_CHECK='
  grep -q "^redis:" /etc/passwd || { echo "no redis user in /etc/passwd"; exit 1; }
  command -v redis-server >/dev/null || { echo "redis-server not on PATH"; exit 1; }
  command -v redis-cli >/dev/null || { echo "redis-cli not on PATH"; exit 1; }
  echo "  redis user: $(grep "^redis:" /etc/passwd | cut -d: -f1,3,4)  $(redis-server --version | cut -d" " -f1-3)"
'
BUSYBOX_CHECK='
  export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  [ "$(readlink /bin/sh)" = /bin/busybox ] || { echo "/bin/sh is not busybox"; exit 1; }
  for f in /bin/* /sbin/* /usr/bin/* /usr/sbin/*; do
    [ "$f" = /bin/busybox ] || [ "$(readlink "$f")" = /bin/busybox ] || { echo "$f is not a busybox applet"; exit 1; }
  done
  [ "$(grep "^redis:" /etc/passwd | cut -d: -f3,4)" = 999:1000 ] || { echo "no redis user 999:1000"; exit 1; }
  echo "  busybox userland: $(busybox --list | wc -l) applets, $(redis-server --version | cut -d" " -f1-3), $(redis-cli --version)"
'
CELERY_CHECK='
  /usr/bin/python3 -c "import celery, redis, kombu; print(\"  celery\", celery.__version__, \"kombu\", kombu.__version__, \"redis-py\", redis.__version__)"
'

# assemble_busybox TREE WORK: a tree holding only busybox (Debian's busybox-static, fetched with
# apt-get download, as /bin/sh and every tool, installed as symlinks the way alpine does), the redis
# binaries of local/redis-base in /usr/local/bin (redis-server, redis-cli, redis-benchmark;
# redis-sentinel and redis-check-* are names of redis-server, as upstream installs them), the shared
# libraries ldd resolves for them there, and alpine's users and groups. No second debootstrap.
assemble_busybox() {
  local to="$1" from="$2/from" ctr lib busybox
  docker image inspect local/redis-base:"$SUITE" >/dev/null 2>&1 ||
    build_image local/redis-base:"$SUITE" "redis-server redis-tools" "$REDIS_CHECK"
  mkdir -p "$2/deb"
  $SUDO mkdir -p "$from"
  ctr=$(docker create local/redis-base:"$SUITE" /bin/true)
  docker export "$ctr" | $SUDO tar -C "$from" -x || die "docker export of local/redis-base:$SUITE failed"
  docker rm "$ctr" >/dev/null
  if ! (cd "$2/deb" && { apt-get download busybox-static || { $SUDO apt-get update -qq && apt-get download busybox-static; }; }) >"$2/apt.log" 2>&1; then
    cat "$2/apt.log" >&2
    die "apt-get download busybox-static failed"
  fi
  $SUDO dpkg-deb -x "$2"/deb/busybox-static_*.deb "$2/deb/x"
  busybox="$2/deb/x/bin/busybox"
  [ -f "$busybox" ] || busybox="$2/deb/x/usr/bin/busybox"
  [ -f "$busybox" ] || die "no busybox binary in the busybox-static package"
  $SUDO mkdir -p "$to"/bin "$to"/sbin "$to"/usr/bin "$to"/usr/sbin "$to"/usr/local/bin "$to"/etc \
    "$to"/root "$to"/home/redis "$to"/var/run "$to"/dev "$to"/proc "$to"/sys
  $SUDO install -d -m 1777 "$to"/tmp
  $SUDO cp "$busybox" "$to"/bin/busybox
  $SUDO chroot "$to" /bin/busybox --install -s
  $SUDO cp -L "$from"/usr/bin/redis-server "$to"/usr/local/bin/redis-server
  $SUDO cp -L "$from"/usr/bin/redis-cli "$from"/usr/bin/redis-benchmark "$to"/usr/local/bin/
  for lib in redis-sentinel redis-check-rdb redis-check-aof; do $SUDO ln -s redis-server "$to"/usr/local/bin/$lib; done
  # Every library the binaries load (and the dynamic loader), at the path ldd names, its symlinks
  # resolved inside the tree.
  for lib in $($SUDO chroot "$from" ldd /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/redis-benchmark |
    sed -n 's@^[^/]*\(/[^ ]*\) (0x[0-9a-f]*)$@\1@p' | sort -u); do
    $SUDO mkdir -p "$to$(dirname "$lib")"
    $SUDO cp "$from$($SUDO chroot "$from" readlink -f "$lib")" "$to$lib"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/:/sbin/nologin' \
    'redis:x:999:1000:Linux User,,,:/home/redis:/sbin/nologin' | $SUDO tee "$to"/etc/passwd >/dev/null
  printf '%s\n' 'root:x:0:root' 'nogroup:x:65534:' 'redis:x:1000:redis' | $SUDO tee "$to"/etc/group >/dev/null
  printf 'hosts: files dns\n' | $SUDO tee "$to"/etc/nsswitch.conf >/dev/null
  $SUDO chown 999:1000 "$to"/home/redis
}

if [ "$WHAT" = redis ] || [ "$WHAT" = all ]; then
  build_image local/redis-base:"$SUITE" "redis-server redis-tools" "$REDIS_CHECK"
fi
if [ "$WHAT" = celery ] || [ "$WHAT" = all ]; then
  build_image local/celery-base:"$SUITE" "python3-celery python3-redis" "$CELERY_CHECK"
fi
if [ "$WHAT" = busybox ] || [ "$WHAT" = all ]; then
  build_image local/redis-busybox:"$SUITE" "" "$BUSYBOX_CHECK" assemble_busybox
fi
log "done"
