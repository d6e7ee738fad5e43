package dockerstack

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// The stacks build FROM redis:7-alpine, whose /bin/sh and tools are busybox; our scripts otherwise run
// under Debian's dash and coreutils (tests/realredis, the Debian base). Tests on dockertest.RedisBusybox
// (deployment/scripts/build-base-images.sh) run them as users' images do.

// assertBusybox fails unless the container's /bin/sh and every tool our scripts call are busybox
// applets: what ran in it ran under busybox, not dash and coreutils.
func assertBusybox(t *testing.T, d *dockertest.Deployment, ctr string) {
	t.Helper()
	out, err := d.Exec(t, ctr, "/bin/sh", "-c", `for c in sh sed grep awk cut tail head cat sha256sum cmp id mv ln sync; do
	p=$(which "$c") || { echo "$c: none"; continue; }
	echo "$c: $(readlink "$p")"
done`)
	if err != nil {
		t.Fatalf("tools of %s: %v: %s", ctr, err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(l, ": /bin/busybox") {
			t.Errorf("%s: %s, want a busybox applet", ctr, l)
		}
	}
}

// entrypointScript runs the image's entrypoint with a stand-in redis-server (it prints its arguments)
// in a run and a data directory under /tmp: the checks before start, then the node and sentinel
// copies, made and made again from a changed upload after a role was learned. Sections start "== ".
const entrypointScript = `set -u
ep=/usr/local/bin/docker-entrypoint.sh
run=/tmp/run data=/tmp/data
mkdir -p /tmp/bin $run $data
printf '#!/bin/sh\necho "redis-server $*"\n' >/tmp/bin/redis-server && chmod +x /tmp/bin/redis-server
export PATH=/tmp/bin:$PATH REDIS_RUN_DIR=$run REDIS_DATA_DIR=$data
printf 'port 6379\naclfile %s/users.acl\nreplicaof redis-0 6379\n' $run >$run/redis.conf
echo "== no ACL file"; $ep 2>&1; echo "exit $?"
echo 'user default off' >$run/users.acl
echo "== no password file"; $ep 2>&1; echo "exit $?"
echo secret >$run/ops.password
echo "== data not writable"; REDIS_DATA_DIR=/ $ep 2>&1; echo "exit $?"
printf 'port 6379\n' >$run/plain.conf
echo "== no aclfile"; $ep $run/plain.conf 2>&1; echo "exit $?"
echo "== start"; $ep --appendonly yes 2>&1; echo "exit $?"
echo "== node first"; $ep node 2>&1; echo "exit $?"
echo 'replicaof redis-2 6379' >>$data/redis.conf
echo "== node same"; $ep node 2>&1; echo "exit $?"
echo 'maxmemory 64mb' >>$run/redis.conf
echo "== node changed"; $ep node 2>&1; echo "exit $?"
cat $data/redis.conf
printf 'port 26379\nsentinel monitor emailclient redis-0 6379 2\n' >$run/sentinel.conf
echo pw >$run/sentinel.password
echo "== sentinel first"; $ep sentinel 2>&1; echo "exit $?"
sed -i 's/^sentinel monitor emailclient redis-0 6379 2$/sentinel monitor emailclient redis-1 6379 2/' $data/sentinel.conf
printf 'sentinel myid 0123abcd\nsentinel current-epoch 3\nsentinel known-replica emailclient redis-0 6379\n' >>$data/sentinel.conf
echo 'sentinel down-after-milliseconds emailclient 4000' >>$run/sentinel.conf
echo "== sentinel changed"; $ep sentinel 2>&1; echo "exit $?"
cat $data/sentinel.conf
`

// checkEntrypointOnBusybox runs entrypointScript in image (the broker image built on the busybox
// base) as its own user, and requires each verdict.
func checkEntrypointOnBusybox(t *testing.T, image, label string) {
	t.Helper()
	out, err := exec.Command("docker", "run", "--rm", "--label", dockertest.LabelKey+"="+label, "--network", "none",
		"--entrypoint", "/bin/sh", image, "-c", entrypointScript).CombinedOutput()
	if err != nil {
		t.Fatalf("entrypoint script: %v\n%s", err, out)
	}
	sections := map[string]string{}
	for _, s := range strings.Split("\n"+string(out), "\n== ")[1:] {
		name, body, _ := strings.Cut(s, "\n")
		sections[name] = body
	}
	for name, want := range map[string][]string{
		"no ACL file":       {"docker-entrypoint: error: ACL file /tmp/run/users.acl is missing or empty", "exit 1"},
		"no password file":  {"password file /tmp/run/ops.password is missing or empty", "exit 1"},
		"data not writable": {"docker-entrypoint: error: data directory / is not writable by uid 999", "exit 1"},
		"no aclfile":        {"has no aclfile directive: refusing to start Redis without authentication", "exit 1"},
		"start":             {"redis-server /tmp/run/redis.conf --appendonly yes", "exit 0"},
		"node first":        {"/tmp/data/redis.conf initialised from /tmp/run/redis.conf", "data node role: replicaof redis-0 6379", "redis-server /tmp/data/redis.conf\n"},
		"node same":         {"data node role: replicaof redis-2 6379", "redis-server /tmp/data/redis.conf\n"},
		"node changed":      {"made again from the changed /tmp/run/redis.conf, keeping what was learned", "data node role: replicaof redis-2 6379", "maxmemory 64mb\nreplicaof redis-2 6379"},
		"sentinel first":    {"/tmp/data/sentinel.conf initialised from /tmp/run/sentinel.conf", "redis-server /tmp/data/sentinel.conf --sentinel"},
		"sentinel changed": {"made again from the changed /tmp/run/sentinel.conf", "sentinel monitor emailclient redis-1 6379 2\nsentinel down-after-milliseconds emailclient 4000\n",
			"sentinel myid 0123abcd", "sentinel current-epoch 3", "sentinel known-replica emailclient redis-0 6379"},
	} {
		body, ok := sections[name]
		if !ok {
			t.Errorf("entrypoint on busybox: no section %q in:\n%s", name, out)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("entrypoint on busybox, %s: want %q in:\n%s", name, w, body)
			}
		}
	}
	if strings.Contains(sections["node changed"], "redis-0") {
		t.Errorf("entrypoint on busybox: the uploaded replicaof line replaced the learned role:\n%s", sections["node changed"])
	}
	if t.Failed() {
		t.Logf("entrypoint script output:\n%s", out)
	}
}
