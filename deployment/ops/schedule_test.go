package ops

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// okLine is the scheduler's line for a good run.
var okLine = regexp.MustCompile(`^backup ok file=(redis-backup-\S+\.rdb) size=(\d+) keys=(\d+) sha256=([0-9a-f]{64}) deleted=(\d+) duration=\S+ node=\S+ role=(primary|replica)$`)

// syncBuffer is a bytes.Buffer safe to read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the complete lines written so far.
func (s *syncBuffer) lines() []string {
	out := s.String()
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		return strings.Split(out[:i], "\n")
	}
	return nil
}

// background is a long-running command started by startCmd.
type background struct {
	stdout, stderr *syncBuffer
	stop           func() result
}

// startCmd runs a redis-ops command in the background with REDIS_ADDR=addr
// and the ops password in its environment (plus vars); stop cancels it (as
// SIGTERM does) and returns its result.
func startCmd(t *testing.T, addr string, vars map[string]string, args ...string) *background {
	t.Helper()
	envVars := map[string]string{"REDIS_ADDR": addr, "REDIS_PASSWORD": testPassword}
	for k, v := range vars {
		envVars[k] = v
	}
	bg := &background{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	e := &env{stdout: bg.stdout, stderr: bg.stderr, getenv: func(k string) string { return envVars[k] },
		isTerminal: func(io.Writer) bool { return false }, now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- e.run(ctx, args) }()
	var stopped *result
	bg.stop = func() result {
		if stopped != nil {
			return *stopped
		}
		cancel()
		select {
		case code := <-done:
			r := result{code: code, stdout: bg.stdout.String(), stderr: bg.stderr.String()}
			if strings.Contains(r.stdout+r.stderr, testPassword) {
				t.Errorf("redis-ops printed the password (args %v)", args)
			}
			stopped = &r
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("command did not stop within 30s of cancel")
			return result{}
		}
	}
	t.Cleanup(func() { bg.stop() })
	return bg
}

func startSchedule(t *testing.T, addr string, vars map[string]string, args ...string) *background {
	return startCmd(t, addr, vars, append([]string{"schedule"}, args...)...)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func backupFiles(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	return m
}

// TestScheduleRunsBackupsAndRetention: a 2s schedule against a real
// redis-server runs backups, each verified and logged in one line; the first
// run's retention deletes exactly the expired backups; last-success follows.
func TestScheduleRunsBackupsAndRetention(t *testing.T) {
	s := startRedis(t)
	client := opsClient(t, s)
	seed(t, client)
	dir := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	expired := writeFakeBackup(t, dir, backupPrefix+"20200101T000000.000Z", now.Add(-31*day), now, true)
	orphan := writeFakeBackup(t, dir, backupPrefix+"orphan", time.Time{}, now.Add(-40*day), false)
	kept := writeFakeBackup(t, dir, backupPrefix+"recent", now.Add(-29*day), now.Add(-60*day), true)
	other := filepath.Join(dir, "not-a-backup.rdb")
	_ = os.WriteFile(other, nil, 0o644)
	_ = os.Chtimes(other, now.Add(-100*day), now.Add(-100*day))

	bg := startSchedule(t, s.Addr(), nil, "--every", "2s", "--dir", dir, "--data-dir", s.Dir(), "--retention", "720h")
	waitFor(t, 20*time.Second, "the first run's line", func() bool { return len(bg.stdout.lines()) == 1 })
	first := time.Now()
	// Redis changes between runs: the second backup has 100 more keys.
	for i := 0; i < 100; i++ {
		client.Set(context.Background(), fmt.Sprintf("between-runs:%d", i), i, 0)
	}
	waitFor(t, 20*time.Second, "the second run's line", func() bool { return len(bg.stdout.lines()) == 2 })
	r := bg.stop()
	if r.code != ExitOK || !strings.Contains(r.stderr, "stopping") {
		t.Fatalf("schedule: %v", r)
	}
	if gap := time.Since(first); gap > 6*time.Second {
		t.Errorf("second run %v after the first, schedule is every 2s", gap)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want exactly one line per run (2), got %d: %v", len(lines), r)
	}
	var keys []int
	for i, l := range lines {
		m := okLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d %q does not match %v", i, l, okLine)
		}
		rdb := filepath.Join(dir, m[1])
		man, err := verifyBackup(context.Background(), rdb)
		if err != nil {
			t.Errorf("backup %s: %v", rdb, err)
		}
		if size, _ := strconv.ParseInt(m[2], 10, 64); size != man.Size || m[4] != man.SHA256 {
			t.Errorf("line %q disagrees with manifest %+v", l, man)
		}
		k, _ := strconv.Atoi(m[3])
		keys = append(keys, k)
		if want := []string{"2", "0"}[i]; m[5] != want {
			t.Errorf("run %d deleted=%s, want %s", i, m[5], want)
		}
	}
	if keys[0] != 20 || keys[1] != 120 {
		t.Errorf("keys per run %v, want [20 120]", keys)
	}
	if got := backupFiles(dir); len(got) != 3 {
		t.Errorf("backups left: %v, want the 29-day-old one and the 2 new ones", got)
	}
	for _, f := range []string{expired, manifestPath(expired), orphan} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("expired %s still exists", f)
		}
	}
	for _, f := range []string{kept, manifestPath(kept), other} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("retention deleted a file it must keep: %v", err)
		}
	}
	last, err := readLastSuccess(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, lastSuccessFile))
	second := okLine.FindStringSubmatch(lines[1])[1]
	if !strings.HasSuffix(strings.TrimSpace(string(b)), " "+second) || time.Since(last) > 10*time.Second {
		t.Errorf("last-success %q, want the second backup %s, recent", b, second)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

// TestScheduleSurvivesFailedRuns: runs against an unreachable server or with a
// wrong password log one FAILED line each and the scheduler keeps going; it
// resumes good backups once Redis is back, without a restart.
func TestScheduleSurvivesFailedRuns(t *testing.T) {
	dir := t.TempDir()
	bg := startSchedule(t, "127.0.0.1:1", nil, "--every", "1s", "--dir", dir, "--timeout", "500ms")
	waitFor(t, 20*time.Second, "two failed runs", func() bool { return len(bg.stdout.lines()) >= 2 })
	r := bg.stop()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != ExitOK || len(lines) < 2 {
		t.Fatalf("want >= 2 failed runs and exit 0: %v", r)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "backup FAILED: unreachable: ") {
			t.Errorf("line %q", l)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, lastSuccessFile)); !os.IsNotExist(err) {
		t.Errorf("last-success written after failures: %v", err)
	}

	// Wrong password, then the password file is fixed (a rotation): the next
	// run succeeds because the file is read for every run.
	s := startRedis(t)
	pwFile := filepath.Join(t.TempDir(), "ops.password")
	if err := os.WriteFile(pwFile, []byte("wrong-password\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	bg = startSchedule(t, s.Addr(), map[string]string{"REDIS_PASSWORD": "", "REDIS_PASSWORD_FILE": pwFile},
		"--every", "1s", "--dir", dir, "--data-dir", s.Dir())
	waitFor(t, 20*time.Second, "a failed run", func() bool { return len(bg.stdout.lines()) >= 1 })
	_ = os.Remove(pwFile)
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a good run after the password fix", func() bool {
		l := bg.stdout.lines()
		return len(l) > 0 && strings.HasPrefix(l[len(l)-1], "backup ok ")
	})
	r = bg.stop()
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "backup FAILED: auth: ") || !strings.Contains(r.stdout, "\nbackup ok file=") {
		t.Fatalf("schedule with a fixed password: %v", r)
	}
}

// TestScheduleCronOnceAtStart: a cron schedule (next run far away) with
// --once-at-start backs up immediately, then waits and stops cleanly.
func TestScheduleCronOnceAtStart(t *testing.T) {
	s := startRedis(t)
	seed(t, opsClient(t, s))
	dir := t.TempDir()
	bg := startSchedule(t, s.Addr(), nil, "--cron", "0 2 * * *", "--once-at-start", "--dir", dir, "--verify=false")
	waitFor(t, 20*time.Second, "the start-up run", func() bool { return len(bg.stdout.lines()) == 1 })
	time.Sleep(200 * time.Millisecond)
	r := bg.stop()
	if r.code != ExitOK || !okLine.MatchString(strings.TrimSpace(r.stdout)) || !strings.Contains(r.stderr, "0 2 * * *") {
		t.Fatalf("schedule --cron --once-at-start: %v", r)
	}
	if _, err := readLastSuccess(dir); err != nil {
		t.Errorf("last-success: %v", err)
	}
}

func TestScheduleUsage(t *testing.T) {
	cases := map[string][]string{
		"both":          {"--cron", "0 2 * * *", "--every", "2s", "--dir", "/tmp/x"},
		"neither":       {"--dir", "/tmp/x"},
		"no dir":        {"--every", "2s"},
		"bad cron":      {"--cron", "0 25 * * *", "--dir", "/tmp/x"},
		"too fast":      {"--every", "500ms", "--dir", "/tmp/x"},
		"bad retention": {"--every", "2s", "--dir", "/tmp/x", "--retention", "-1h"},
		"bad flag":      {"--every", "2s", "--dir", "/tmp/x", "--nope"},
		"bad timeout":   {"--every", "2s", "--dir", "/tmp/x", "--timeout", "0s"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			r := cli(t, "127.0.0.1:1", nil, append([]string{"schedule"}, args...)...)
			if r.code != ExitUsage || r.stdout != "" {
				t.Errorf("%v", r)
			}
		})
	}
	r := cli(t, "127.0.0.1:1", nil, "schedule", "--help")
	if r.code != ExitOK || !strings.Contains(r.stderr, "backup ok file=NAME") || !strings.Contains(r.stderr, "-once-at-start") {
		t.Errorf("--help: %v", r)
	}
}

func TestEverySchedule(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := everySchedule{d: 2 * time.Second, start: start}
	for _, c := range []struct{ after, want time.Duration }{
		{0, 2 * time.Second}, {time.Second, 2 * time.Second}, {2 * time.Second, 4 * time.Second},
		{7500 * time.Millisecond, 8 * time.Second}, // a run that overran skips the missed slot
	} {
		if got := s.next(start.Add(c.after)).Sub(start); got != c.want {
			t.Errorf("next(start+%v) = start+%v, want start+%v", c.after, got, c.want)
		}
	}
}
