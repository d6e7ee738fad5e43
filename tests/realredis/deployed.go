// Package realredis runs what the program declares for the Redis container (the uploaded redis.conf
// and ACL file, the image's entrypoint and healthcheck scripts) with a real redis-server, outside
// Docker: the real-Redis tier.
package realredis

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// Broker is a redis-server started like the declared container starts it.
type Broker struct {
	*redistest.Server
	Root      string
	RunDir    string
	DataDir   string
	Celery    string // the celery user's password
	Ops       string // the ops user's password
	Monitor   string // the monitor user's password
	Directive []redisconf.Directive
}

// Options change how Start runs the declared broker.
type Options struct {
	// Config and Secrets are passed to the program (see declared.Options).
	Config, Secrets map[string]string
	// Args are extra redis-server arguments after the declared config (e.g. "--maxmemory", "8mb").
	Args []string
	// Env is extra environment (KEY=VALUE) for the entrypoint, e.g. a PATH that puts a wrapped
	// redis-server first (tests/bench runs it under callgrind).
	Env []string
}

// Uploads returns the files the program places in the Redis container's run volume, by path.
func Uploads(t testing.TB, r *declared.Result) map[string]string {
	t.Helper()
	files, ok := r.RunFiles("broker-redis")
	if !ok {
		t.Fatal("the Redis container's files carrier is not declared")
	}
	return files
}

// Start evaluates the program for stack, writes its uploads into a run directory and starts
// redis-server through the image's real entrypoint, as the redis user when the test runs as root.
func Start(t testing.TB, stack string, opts Options) *Broker {
	t.Helper()
	redistest.Require(t)
	r, err := declared.Run(stack, declared.Options{Config: opts.Config, Secrets: opts.Secrets})
	if err != nil {
		t.Fatalf("program for %s: %v", stack, err)
	}
	b := &Broker{Root: r.Root}
	base := sharedTempDir(t)
	b.RunDir, b.DataDir = filepath.Join(base, "run"), filepath.Join(base, "data")
	for _, d := range []string{b.RunDir, b.DataDir} {
		must(t, os.Mkdir(d, 0o700))
	}
	b.writeRuntimeFiles(t, r, opts)
	b.Server = redistest.Start(t, redistest.Options{
		ConfigFile: filepath.Join(b.RunDir, "redis.conf"),
		Args:       opts.Args,
		Dir:        b.DataDir,
		Entrypoint: Entrypoint(t, b.Root),
		Env:        append([]string{"REDIS_RUN_DIR=" + b.RunDir, "REDIS_DATA_DIR=" + b.DataDir}, opts.Env...),
	})
	return b
}

// relocate moves the container's two paths in the declared redis.conf (dir and aclfile) to this
// test's directories; every other line stays as declared.
func relocate(conf, runDir, dataDir string) string {
	lines := strings.Split(conf, "\n")
	for i, l := range lines {
		switch l {
		case "dir " + redisconf.DataDir:
			lines[i] = "dir " + dataDir
		case "aclfile " + redisconf.ACLFile:
			lines[i] = "aclfile " + filepath.Join(runDir, "users.acl")
		}
	}
	return strings.Join(lines, "\n")
}

// writeRuntimeFiles writes the declared uploads into the run directory, as a container creation does.
func (b *Broker) writeRuntimeFiles(t testing.TB, r *declared.Result, opts Options) {
	t.Helper()
	for path, content := range Uploads(t, r) {
		if path == redisconf.ConfigFile {
			content = relocate(content, b.RunDir, b.DataDir)
		}
		file := filepath.Join(b.RunDir, filepath.Base(path))
		_ = os.Remove(file)
		must(t, os.WriteFile(file, []byte(content), 0o444))
	}
	b.Ops = readFile(t, filepath.Join(b.RunDir, "ops.password"))
	b.Monitor = readFile(t, filepath.Join(b.RunDir, "monitor.password"))
	b.Celery = celeryPassword(t, r, opts.Secrets)
	chownToRedis(t, b.RunDir, b.DataDir)
}

// Redeploy evaluates the program again with opts (e.g. rotated passwords) and restarts the server with
// the new runtime files on the same data directory: what replacing the container does.
func (b *Broker) Redeploy(t testing.TB, stack string, opts Options) {
	t.Helper()
	r, err := declared.Run(stack, declared.Options{Config: opts.Config, Secrets: opts.Secrets})
	if err != nil {
		t.Fatalf("program for %s: %v", stack, err)
	}
	b.Stop()
	b.writeRuntimeFiles(t, r, opts)
	b.Restart(t)
}

func celeryPassword(t testing.TB, r *declared.Result, secrets map[string]string) string {
	if pw, ok := secrets["password"]; ok {
		return pw
	}
	if _, ok := r.Get(declared.PasswordType, "broker-celery-password"); !ok {
		t.Fatal("no celery password declared")
	}
	return declared.MockPassword("broker-celery-password")
}

// Entrypoint returns the image's entrypoint, wrapped to drop to the redis user when running as root
// (the container runs it as redis; the entrypoint refuses root).
func Entrypoint(t testing.TB, root string) string {
	t.Helper()
	script := filepath.Join(root, "deployment/docker/redis/docker-entrypoint.sh")
	if os.Geteuid() != 0 {
		return script
	}
	wrapper := filepath.Join(sharedTempDir(t), "as-redis.sh")
	must(t, os.WriteFile(wrapper, []byte("#!/bin/sh\nexec setpriv --reuid=redis --regid=redis --clear-groups "+script+" \"$@\"\n"), 0o755))
	return wrapper
}

// Healthcheck runs the image's healthcheck script against the broker, as the container would, and
// returns its one-line verdict and whether it passed.
func (b *Broker) Healthcheck(t testing.TB, env ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(b.Root, "deployment/docker/redis/redis-healthcheck.sh"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "REDIS_RUN_DIR=" + b.RunDir,
		"REDIS_HEALTHCHECK_PORT=" + strconv.Itoa(b.Port())}, env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// Client connects as a user of the declared ACL file.
func (b *Broker) Client(t testing.TB, user string) *redis.Client {
	pw := map[string]string{redisconf.CeleryUser: b.Celery, redisconf.OpsUser: b.Ops, redisconf.MonitorUser: b.Monitor}[user]
	return b.Server.Client(t, user, pw)
}

// sharedTempDir is a temp dir the redis user can traverse; removed at cleanup.
func sharedTempDir(t testing.TB) string { t.Helper(); return SharedDir(t, 0o755) }

// SharedDir is a new directory under the system temp dir with mode (t.TempDir's parent is private to
// the test's user, where the entrypoint drops to the redis user when the test runs as root: 0o755 to
// read, 0o777 to write), removed at cleanup.
func SharedDir(t testing.TB, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "emailclient-realredis-")
	must(t, err)
	must(t, os.Chmod(dir, mode))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func chownToRedis(t testing.TB, dirs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("redis")
	if err != nil {
		t.Fatalf("the redis user (from Debian's redis-server package) is needed to run as non-root: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range dirs {
		must(t, filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}))
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Ctx is a context with a timeout for one test step.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Inputs returns the declared inputs of the Redis container (for tests that need more of it).
func Inputs(r *declared.Result) resource.PropertyMap {
	c, _ := r.Get(declared.ContainerType, "broker-redis")
	return c.Inputs
}
