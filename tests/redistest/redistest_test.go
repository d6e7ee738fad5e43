package redistest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emailclient/emailclient-infra/tests/redistest"
)

const testPassword = "redistest-self-test-pw"

func TestStartAuthRestartKill(t *testing.T) {
	ctx := context.Background()
	acl := redistest.WriteACLFile(t, "user default off", "user ops on >"+testPassword+" ~* &* +@all")
	s := redistest.Start(t, redistest.Options{Args: append(acl, "--appendonly", "yes", "--maxmemory", "10mb")})

	if got, err := s.Client(t, "", "").Ping(ctx).Result(); err == nil {
		t.Fatalf("ping without auth = %q, want an auth error", got)
	}
	c := s.Client(t, "ops", testPassword)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	mm, err := c.ConfigGet(ctx, "maxmemory").Result()
	if err != nil || mm["maxmemory"] != "10485760" {
		t.Fatalf("maxmemory = %v, %v; want 10485760 (caller args applied)", mm, err)
	}
	dir, err := c.ConfigGet(ctx, "dir").Result()
	if err != nil || dir["dir"] != s.Dir() {
		t.Fatalf("dir = %v, %v; want %s", dir, err, s.Dir())
	}

	oldPid := s.Pid()
	s.Kill9()
	if s.Running() {
		t.Fatal("server still running after Kill9")
	}
	s.Restart(t)
	if s.Pid() == oldPid {
		t.Fatal("restart kept the old pid")
	}
	c2 := s.Client(t, "ops", testPassword)
	if got, err := c2.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after kill -9 and restart: get k = %q, %v; want v (AOF)", got, err)
	}
	if !strings.Contains(s.Log(), "Ready to accept connections") {
		t.Fatal("log has no ready line")
	}
	if strings.Contains(s.Log(), testPassword) {
		t.Fatal("log contains the password")
	}
	s.Stop()
	if s.Running() {
		t.Fatal("server still running after Stop")
	}
}

func TestEntrypoint(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "entry.sh")
	body := "#!/bin/sh\necho \"$MARKER\" > \"$MARKER_FILE\"\nexec redis-server \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "marker")
	s := redistest.Start(t, redistest.Options{Entrypoint: script, Env: []string{"MARKER=hello", "MARKER_FILE=" + marker}})
	if err := s.Client(t, "", "").Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "hello" {
		t.Fatalf("entrypoint did not run with env: %q, %v", b, err)
	}
}

func TestStartExpectFailOnCorruptRDB(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), []byte("REDIS0010garbage-not-an-rdb"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := redistest.StartExpectFail(t, redistest.Options{Dir: dir})
	if err == nil {
		t.Fatalf("server exited 0 on a corrupt dump.rdb; log:\n%s", log)
	}
	if !strings.Contains(log, "Short read") && !strings.Contains(log, "Bad file format") && !strings.Contains(log, "Internal error in RDB") {
		t.Fatalf("log does not explain the RDB failure:\n%s", log)
	}
}

func TestConfigFileComesFirst(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(conf, []byte("maxmemory-policy volatile-lru\nport 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := redistest.Start(t, redistest.Options{ConfigFile: conf})
	got, err := s.Client(t, "", "").ConfigGet(context.Background(), "maxmemory-policy").Result()
	if err != nil || got["maxmemory-policy"] != "volatile-lru" {
		t.Fatalf("maxmemory-policy = %v, %v", got, err)
	}
}

// recorder captures Skip/Fatal instead of ending the test.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }

func TestRequireWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("EMAILCLIENT_REQUIRE_TIERS", "")
	t.Setenv("EMAILCLIENT_TIER_REPORT", "") // a self-test of Require: not a verdict on this machine
	r := &recorder{TB: t}
	redistest.Require(r)
	if !strings.Contains(r.skipped, "tier redis: NOT RUN: redis-server not installed") || r.fatal != "" {
		t.Errorf("without the tier required: skipped %q fatal %q", r.skipped, r.fatal)
	}
	t.Setenv("EMAILCLIENT_REQUIRE_TIERS", "unit,redis,celery")
	r = &recorder{TB: t}
	redistest.Require(r)
	if !strings.Contains(r.fatal, "redis-server not installed") || r.skipped != "" {
		t.Errorf("with the tier required: skipped %q fatal %q", r.skipped, r.fatal)
	}
}
