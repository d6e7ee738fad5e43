// Package celerytest runs the reference Celery worker and client of the email
// service (deployment/docker/email-worker) for tests, with Debian's
// python3-celery under /usr/bin/python3.
//
// Everything is driven through the environment variables the Pulumi program
// sets on the email-service container: StartWorker and the client functions
// take exactly that env map (plus PATH, HOME and PYTHONPATH), so a test can
// hand them the env it read from the program's declared resources.
//
// Nothing here prints a password: the harness's own log lines are redacted,
// and Celery masks the URLs it logs (a test can assert that on Log()).
package celerytest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/proc"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// Python is the interpreter that has Debian's python3-celery and
// python3-redis. The python3 first on PATH may be another one.
const Python = "/usr/bin/python3"

// ReadyTimeout is how long StartWorker and Restart wait for the worker to log
// "ready.". Defaults to 60s.
var ReadyTimeout = 60 * time.Second

// StopTimeout is how long Stop waits after SIGTERM (Celery's warm shutdown,
// which lets running tasks finish) before it kills the worker's process
// group. Defaults to 15s.
var StopTimeout = 15 * time.Second

// ClientGrace is added to a client's own --timeout before the harness kills
// it. Defaults to 60s.
var ClientGrace = 60 * time.Second

// Install is the one-line hint printed when the tier cannot run.
const Install = "apt-get install python3-celery python3-redis"

// WorkerSubdir is the directory, relative to the repository root, that holds
// the emailworker package.
const WorkerSubdir = "deployment/docker/email-worker"

// BrokerPackageSubdir is the directory, relative to the repository root, of the
// emailclient_broker package (its pyproject.toml), which emailworker imports.
const BrokerPackageSubdir = "deployment/python/emailclient-broker"

var (
	requireOnce sync.Once
	requireErr  error
	workerSeq   atomic.Int64
)

// Require skips the test with one line when /usr/bin/python3 cannot import celery and redis, or
// fails it when the celery tier is required (see tests/tiers).
func Require(t testing.TB) {
	t.Helper()
	requireOnce.Do(func() {
		out, err := exec.Command(Python, "-c", "import celery, redis").CombinedOutput()
		if err != nil {
			last := strings.TrimSpace(string(out))
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			if last == "" {
				last = err.Error()
			}
			requireErr = fmt.Errorf("%s cannot import celery, redis (%s): %s", Python, last, Install)
		}
	})
	missing := ""
	if requireErr != nil {
		missing = requireErr.Error()
	}
	tiers.Require(t, tiers.Celery, missing)
}

// RepoRoot returns the directory holding go.mod, found by walking up from the
// working directory (a test's working directory is its package directory).
func RepoRoot() (string, error) { return stacks.FindRoot() }

// WorkerDir returns the absolute path of deployment/docker/email-worker, the
// PYTHONPATH entry of the emailworker package.
func WorkerDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, filepath.FromSlash(WorkerSubdir))
	if _, err := os.Stat(filepath.Join(dir, "emailworker", "app.py")); err != nil {
		return "", fmt.Errorf("celerytest: emailworker package not found: %w", err)
	}
	return dir, nil
}

// BrokerPackageDir returns the absolute path of deployment/python/emailclient-broker,
// the PYTHONPATH entry of the emailclient_broker package.
func BrokerPackageDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return brokerPackageDir(filepath.Join(root, filepath.FromSlash(WorkerSubdir))), nil
}

// brokerPackageDir is the emailclient_broker package's directory in the checkout of workerDir.
func brokerPackageDir(workerDir string) string {
	root := filepath.Join(workerDir, strings.Repeat("../", strings.Count(WorkerSubdir, "/")+1))
	return filepath.Join(root, filepath.FromSlash(BrokerPackageSubdir))
}

// processEnv returns env as KEY=VALUE plus PATH, HOME, PYTHONPATH (workerDir
// and the emailclient_broker package, unless env sets it) and
// PYTHONDONTWRITEBYTECODE, so that nothing else from the test's environment
// leaks into Celery's configuration.
func processEnv(env map[string]string, workerDir string) []string {
	base := map[string]string{
		"PATH":                    os.Getenv("PATH"),
		"HOME":                    os.Getenv("HOME"),
		"PYTHONPATH":              workerDir + string(os.PathListSeparator) + brokerPackageDir(workerDir),
		"PYTHONDONTWRITEBYTECODE": "1",
		"PYTHONUNBUFFERED":        "1",
		"LANG":                    "C.UTF-8",
	}
	if base["HOME"] == "" {
		base["HOME"] = os.TempDir()
	}
	for k, v := range env {
		base[k] = v
	}
	out := make([]string, 0, len(base))
	for k, v := range base {
		out = append(out, k+"="+v)
	}
	return out
}

// Redact replaces the passwords of the URLs in env (both URL-encoded and
// decoded) with "***" in s. The harness uses it for everything it logs.
func Redact(s string, env map[string]string) string {
	for _, v := range env {
		u, err := url.Parse(v)
		if err != nil || u.User == nil {
			continue
		}
		pw, ok := u.User.Password()
		if !ok || pw == "" {
			continue
		}
		if raw := rawPassword(v); raw != "" {
			s = strings.ReplaceAll(s, raw, "***")
		}
		s = strings.ReplaceAll(s, pw, "***")
	}
	return s
}

// rawPassword returns the still-encoded password part of a URL's userinfo.
func rawPassword(v string) string {
	_, rest, ok := strings.Cut(v, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	return pw
}

// Worker is a running (or stopped) Celery worker owned by a test.
type Worker struct {
	env      map[string]string
	hostname string
	logPath  string
	dir      string
	workDir  string
	level    string

	proc.Proc
}

// StartWorker runs `python3 -m celery -A emailworker.app worker` with exactly
// env (plus PATH, HOME and PYTHONPATH) and a unique node name, waits until it
// logs "<name> ready." and stops it on test cleanup. It fails the test, with
// the redacted tail of the worker log, when the worker does not come up.
func StartWorker(t testing.TB, env map[string]string) *Worker {
	t.Helper()
	w := newWorker(t, env)
	t.Cleanup(func() {
		w.Stop()
		if t.Failed() {
			t.Logf("celerytest: worker %s log (tail, redacted):\n%s", w.hostname, w.tail())
		}
	})
	if err := w.start(); err != nil {
		t.Fatalf("celerytest: %v\n%s", err, w.tail())
	}
	return w
}

// StartWorkerExpectFail runs a worker that is expected to exit on its own
// (for example with a missing CELERY_BROKER_URL) and returns its log and exit
// error. It fails the test when the worker becomes ready or keeps running
// longer than ReadyTimeout.
func StartWorkerExpectFail(t testing.TB, env map[string]string) (log string, err error) {
	t.Helper()
	w := newWorker(t, env)
	t.Cleanup(w.Stop)
	offset := w.logSize()
	if err := w.spawn(); err != nil {
		t.Fatalf("celerytest: %v", err)
	}
	select {
	case <-w.Done():
	case <-time.After(ReadyTimeout):
		w.Stop()
		t.Fatalf("celerytest: worker did not exit within %s\n%s", ReadyTimeout, w.tail())
	}
	log = w.Log()
	if strings.Contains(log[min(offset, int64(len(log))):], w.readyMarker()) {
		t.Fatalf("celerytest: worker became ready, expected it to fail")
	}
	if w.WaitErr() == nil {
		return log, errors.New("worker exited with status 0")
	}
	return log, w.WaitErr()
}

func newWorker(t testing.TB, env map[string]string) *Worker {
	t.Helper()
	Require(t)
	workDir, err := WorkerDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	level := strings.ToLower(env["CELERY_LOG_LEVEL"])
	if level == "" {
		level = "info"
	}
	copied := make(map[string]string, len(env)+1)
	for k, v := range env {
		copied[k] = v
	}
	if copied["EMAILWORKER_HEARTBEAT_FILE"] == "" {
		// One heartbeat file per worker (the image's default is /tmp/emailworker-heartbeat).
		copied["EMAILWORKER_HEARTBEAT_FILE"] = filepath.Join(dir, "heartbeat")
	}
	return &Worker{
		env:      copied,
		hostname: fmt.Sprintf("celerytest%d-%d@localhost", os.Getpid(), workerSeq.Add(1)),
		logPath:  filepath.Join(dir, "worker.log"),
		dir:      dir,
		workDir:  workDir,
		level:    level,
	}
}

// Hostname returns the worker's Celery node name (name@host); its direct
// queue is "<Hostname()>.dq2".
func (w *Worker) Hostname() string { return w.hostname }

// LogPath returns the path of the worker's log (stdout and stderr).
func (w *Worker) LogPath() string { return w.logPath }

// Log returns the whole worker log, unredacted (Celery masks URL passwords;
// tests can assert that).
func (w *Worker) Log() string {
	b, _ := os.ReadFile(w.logPath)
	return string(b)
}

// Stop sends SIGTERM (warm shutdown), waits up to StopTimeout, then kills the
// worker's whole process group (main process and pool children). It is a
// no-op when the worker is not running.
func (w *Worker) Stop() { w.signalAndWait(syscall.SIGTERM, StopTimeout) }

// Kill sends SIGKILL to the worker's whole process group, as a crash or an
// OOM kill would: tasks in progress are lost by the worker.
func (w *Worker) Kill() { w.signalAndWait(syscall.SIGKILL, 0) }

// Restart stops the worker if it runs and starts it again with the same env
// and node name, waiting until it is ready.
func (w *Worker) Restart(t testing.TB) {
	t.Helper()
	w.Stop()
	if err := w.start(); err != nil {
		t.Fatalf("celerytest: restart: %v\n%s", err, w.tail())
	}
}

// Healthcheck runs `python3 -m emailworker.healthcheck` against this worker
// with the same env: nil when the worker consumed a probe task from its own
// queue within timeout. The error carries the check's one-line verdict.
func (w *Worker) Healthcheck(timeout time.Duration) error {
	secs := fmt.Sprintf("%.1f", timeout.Seconds())
	out, err := w.run(timeout+ClientGrace, "-m", "emailworker.healthcheck", "--hostname", w.hostname, "--timeout", secs)
	line := Redact(strings.TrimSpace(string(out)), w.env)
	if err != nil {
		return fmt.Errorf("%s (%v)", line, err)
	}
	return nil
}

// Alive runs the image's healthcheck, emailworker-alive, with the worker's env: nil when the worker
// took its own heartbeat task from Redis (or was busy) recently. The error carries its verdict.
func (w *Worker) Alive() error {
	cmd := exec.Command("sh", filepath.Join(w.workDir, "emailworker-alive"))
	cmd.Env = processEnv(w.env, w.workDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s (%v)", strings.TrimSpace(string(out)), err)
	}
	return nil
}

// WaitAlive waits up to timeout for Alive to pass and returns its last verdict.
func (w *Worker) WaitAlive(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := w.Alive()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *Worker) run(limit time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python, args...)
	cmd.Dir = w.dir
	cmd.Env = processEnv(w.env, w.workDir)
	return cmd.CombinedOutput()
}

func (w *Worker) readyMarker() string { return w.hostname + " ready." }

func (w *Worker) logSize() int64 {
	fi, err := os.Stat(w.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (w *Worker) spawn() error {
	logFile, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(Python, "-m", "celery", "-A", "emailworker.app", "worker",
		"--hostname", w.hostname, "--loglevel", w.level)
	cmd.Dir = w.dir
	cmd.Env = processEnv(w.env, w.workDir)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := w.Start(cmd); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	return nil
}

func (w *Worker) start() error {
	offset := w.logSize()
	if err := w.spawn(); err != nil {
		return err
	}
	done := w.Done()
	deadline := time.Now().Add(ReadyTimeout)
	quiet := w.level != "debug" && w.level != "info" // "ready." is logged at info
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("worker %s exited before it was ready: %v", w.hostname, w.WaitErr())
		case <-time.After(100 * time.Millisecond):
		}
		if quiet {
			if w.Healthcheck(5*time.Second) == nil {
				return nil
			}
			continue
		}
		if w.logContainsAfter(offset, w.readyMarker()) {
			return nil
		}
	}
	w.Stop()
	return fmt.Errorf("worker %s not ready within %s", w.hostname, ReadyTimeout)
}

func (w *Worker) logContainsAfter(offset int64, marker string) bool {
	f, err := os.Open(w.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), marker) {
			return true
		}
	}
	return false
}

func (w *Worker) signalAndWait(sig syscall.Signal, grace time.Duration) { w.Signal(sig, grace) }

func (w *Worker) tail() string {
	log := Redact(w.Log(), w.env)
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
