// Package redistest runs a real redis-server for tests.
//
// Start picks a free loopback port, runs redis-server (or an entrypoint script
// that execs it) with the caller's arguments followed by the harness's own
// (--port, --bind, --dir, --daemonize no, --logfile), waits until the server
// accepts connections and has finished loading its data, and stops it when the
// test ends. Tests that need the server skip with one line when redis-server is
// not installed, or fail when EMAILCLIENT_REQUIRE_TIERS contains "redis".
package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/tests/proc"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// ReadyTimeout is how long Start and Restart wait for the server to accept
// connections and finish loading. Defaults to 15s.
var ReadyTimeout = 15 * time.Second

// StopTimeout is how long Stop waits after SIGTERM before sending SIGKILL.
// Defaults to 10s.
var StopTimeout = 10 * time.Second

// readyMarker is the line redis-server logs once it has loaded its data.
const readyMarker = "Ready to accept connections"

// Require skips the test (one line) when redis-server is not on PATH, or fails it when the redis
// tier is required (see tests/tiers).
func Require(t testing.TB) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing = "redis-server not installed (apt-get install redis-server)"
	}
	tiers.Require(t, tiers.Redis, missing)
}

// Options configures a server started by Start.
type Options struct {
	// Args are extra redis-server arguments, e.g. "--maxmemory", "1mb". The
	// harness appends its own --port, --bind, --dir, --daemonize and --logfile
	// after them, so those always win.
	Args []string
	// ConfigFile is an optional redis.conf path, passed as the first argument.
	ConfigFile string
	// Dir is the data directory. Defaults to t.TempDir().
	Dir string
	// Entrypoint is an optional script run instead of redis-server. It receives
	// the same arguments and must exec redis-server "$@".
	Entrypoint string
	// Env is extra environment (KEY=VALUE) for the process.
	Env []string
}

// Server is a running (or stopped) redis-server owned by a test.
type Server struct {
	opts Options
	port int
	dir  string

	proc.Proc
	mu     sync.Mutex // guards output
	output *bytes.Buffer
}

// Start runs a redis-server for the test and waits until it is ready; it
// fails the test (with the tail of the log) when the server does not come up
// within ReadyTimeout. The server is stopped on test cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	s := &Server{opts: opts, dir: opts.Dir}
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	t.Cleanup(s.Stop)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.port, err = FreePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.startAndWait(); err == nil {
			return s
		}
		if !strings.Contains(s.Log(), "Address already in use") {
			break
		}
	}
	t.Fatalf("redistest: %v\n%s", err, s.tail())
	return nil
}

// StartExpectFail runs a redis-server that is expected not to start (for
// example on a corrupted data file). It returns the log (log file plus the
// process's stdout and stderr) and the process's exit error. It fails the test
// when the server becomes ready or does not exit within ReadyTimeout.
func StartExpectFail(t testing.TB, opts Options) (log string, err error) {
	t.Helper()
	Require(t)
	s := &Server{opts: opts, dir: opts.Dir}
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	t.Cleanup(s.Stop)
	if s.port, err = FreePort(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	offset := len(s.Log())
	if err := s.spawn(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	deadline := time.After(ReadyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.Done():
			return s.Log() + s.processOutput(), s.WaitErr()
		case <-deadline:
			t.Fatalf("redistest: server did not exit within %v\n%s", ReadyTimeout, s.tail())
		case <-tick.C:
			if strings.Contains(s.Log()[offset:], readyMarker) {
				t.Fatalf("redistest: server started, expected it to fail\n%s", s.tail())
			}
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WriteACLFile writes an ACL file with the given lines (e.g. "user default
// off", "user ops on >secret ~* &* +@all") into a new temp directory and
// returns the arguments "--aclfile", path. Using a file keeps passwords off
// the process's command line. (redis-server also accepts repeated --user
// with the rule as separate arguments, e.g. "--user", "ops", "on", ">pw",
// "~*", "+@all", but that puts the password in argv; one quoted argument
// such as "ops on >pw" is rejected.)
func WriteACLFile(t testing.TB, lines ...string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.acl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("redistest: write acl file: %v", err)
	}
	return []string{"--aclfile", path}
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// LogPath returns the path of the server's log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "redis.log") }

// Log returns the contents of the server's log file ("" when there is none).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath())
	return string(b)
}

// Kill9 sends SIGKILL to the server and waits for it to exit.
func (s *Server) Kill9() { s.signalAndWait(syscall.SIGKILL, 0) }

// Stop sends SIGTERM, waits up to StopTimeout, then sends SIGKILL. It is a
// no-op when the server is not running.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM, StopTimeout) }

// Restart stops the server if it is running and starts it again with the same
// arguments, port and data directory, waiting until it is ready.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.startAndWait(); err != nil {
		t.Fatalf("redistest: restart: %v\n%s", err, s.tail())
	}
}

// Client returns a go-redis client for the server authenticated as user with
// password (both may be empty). It is closed on test cleanup.
func (s *Server) Client(t testing.TB, user, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: password})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Args returns the full argument list the server is started with.
func (s *Server) Args() []string {
	var args []string
	if s.opts.ConfigFile != "" {
		args = append(args, s.opts.ConfigFile)
	}
	args = append(args, s.opts.Args...)
	return append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", s.LogPath(),
	)
}

// spawn starts the process and a goroutine that records its exit.
func (s *Server) spawn() error {
	bin := "redis-server"
	if s.opts.Entrypoint != "" {
		bin = s.opts.Entrypoint
	}
	cmd := exec.Command(bin, s.Args()...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.opts.Env...)
	out := &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: out, mu: &s.mu}
	cmd.Stderr = cmd.Stdout
	s.mu.Lock()
	s.output = out
	s.mu.Unlock()
	if err := s.Start(cmd); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	return nil
}

// startAndWait spawns the server and waits until it is ready.
func (s *Server) startAndWait() error {
	offset := len(s.Log())
	if err := s.spawn(); err != nil {
		return err
	}
	if err := s.waitReady(offset); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// waitReady waits until the port accepts TCP connections and the log, after
// offset, says the server is ready (that is, it has loaded its data).
func (s *Server) waitReady(offset int) error {
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.Done():
			return fmt.Errorf("redis-server exited before it was ready: %v", s.WaitErr())
		default:
		}
		log := s.Log()
		if len(log) >= offset && strings.Contains(log[offset:], readyMarker) && s.dialable() {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("redis-server not ready on %s within %v", s.Addr(), ReadyTimeout)
}

func (s *Server) dialable() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// signalAndWait signals the process group and waits for the exit; after
// grace (when > 0) it escalates to SIGKILL.
func (s *Server) signalAndWait(sig syscall.Signal, grace time.Duration) { s.Signal(sig, grace) }

// processOutput returns what the process wrote to stdout and stderr.
func (s *Server) processOutput() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.output == nil {
		return ""
	}
	return s.output.String()
}

// tail returns the last lines of the log and the process output, for failure
// messages.
func (s *Server) tail() string {
	all := strings.TrimSpace(s.Log() + "\n" + s.processOutput())
	lines := strings.Split(all, "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "--- redis log tail ---\n" + strings.Join(lines, "\n")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// SyncBuffer is a bytes.Buffer that a process's output goroutine (e.g. an exporter run in the test)
// and the test can share.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
