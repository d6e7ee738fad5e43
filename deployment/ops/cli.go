// Package ops implements redis-ops, the operator CLI for the Celery Redis
// broker. Run executes one command and returns a process exit code; the codes
// are stable so cron and monitoring can act on them.
package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Exit codes returned by Run. They are the same for every command.
const (
	ExitOK          = 0  // success / healthy
	ExitError       = 1  // any other error
	ExitUsage       = 2  // bad flags or arguments
	ExitUnreachable = 3  // Redis not reachable (refused, timeout, DNS)
	ExitAuth        = 4  // authentication failed or the user lacks a permission
	ExitPersistence = 5  // RDB bgsave or AOF write failing
	ExitMemory      = 6  // used memory over --memory-warn percent of maxmemory
	ExitEvictions   = 7  // evicted_keys > 0
	ExitLoading     = 8  // Redis is still loading its data
	ExitVerify      = 9  // a backup failed verification
	ExitTopology    = 10 // a replica lost its primary, or the Sentinels know no primary or have no quorum; restore: a Sentinel topology
	ExitEngine      = 11 // restore: no Docker engine reachable
	ExitNotFound    = 12 // restore: a container it needs does not exist on the engine
	ExitKeyCount    = 13 // restore: the restored key count differs from the backup's manifest
	ExitRemote      = 14 // the remote object storage refused or could not be reached (the local backup is kept)
)

const exitCodeHelp = `Exit codes: 0 ok, 1 error, 2 usage, 3 unreachable, 4 auth failure or missing
permission, 5 persistence failing, 6 memory over threshold, 7 evictions seen,
8 loading, 9 backup verification failed, 10 topology (restore: Sentinel),
11 no Docker engine, 12 container not found, 13 restored key count differs,
14 remote object storage failed (unreachable, refused, checksum mismatch).`

// codedError carries an exit code with an error.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode attaches an exit code to err (nil stays nil).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// exitCode maps an error to an exit code: an explicit code, a usage error, a
// classified Redis error, else ExitError.
func exitCode(err error) int {
	var ce *codedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	return classify(err)
}

// env is the process environment, replaceable in tests.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// isTerminal reports whether w is an interactive terminal.
	isTerminal func(w io.Writer) bool
	now        func() time.Time
	// docker connects to the Docker engine at host ("" = DOCKER_HOST, else the default socket);
	// nil means the Docker client library (dialDocker). Tests put a fake engine here.
	docker func(ctx context.Context, host string) (engine, error)
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"health":   {"one-line health check with cron-friendly exit codes", runHealth},
		"monitor":  {"live dashboard (memory, clients, ops/s, persistence, Celery queues)", runMonitor},
		"slowlog":  {"show the slow log", runSlowlog},
		"stats":    {"command statistics, most used first", runStats},
		"analyze":  {"keys and memory by type, largest keys, TTLs, Celery queues (SCAN, never KEYS)", runAnalyze},
		"backup":   {"a fresh RDB from the data dir or over the connection, verified, with checksums and a manifest; retention", runBackup},
		"list":     {"list backups with time, size, keys and verification status", runList},
		"verify":   {"re-check a backup against its manifest and the RDB format", runVerify},
		"restore":  {"restore a verified backup into a deployed broker in one command (Docker engine; see --help)", runRestore},
		"schedule": {"long-running backup scheduler (cron or --every), one log line per run", runSchedule},
		"metrics":  {"serve Prometheus metrics on /metrics (and /healthz)", runMetrics},
		"healthz":  {"exit 0 when an HTTP URL (the metrics /healthz) answers 200", runHealthz},
	}
}

// Run executes the command in args and returns the exit code. Output goes to
// stdout; progress, warnings and errors go to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.Getenv, isTerminal: isTerminal, now: time.Now}
	return e.run(ctx, args)
}

func (e *env) run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		e.usage()
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "redis-ops: unknown command %q\n", args[0])
		e.usage()
		return ExitUsage
	}
	err := cmd.run(ctx, e, args[1:])
	code := exitCode(err)
	if err != nil && !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errReported) {
		fmt.Fprintf(e.stderr, "redis-ops %s: %v\n", args[0], err)
	}
	return code
}

// errReported marks an error whose message was already printed.
var errReported = errors.New("reported")

func (e *env) usage() {
	fmt.Fprintln(e.stderr, "Usage: redis-ops COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(e.stderr, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(e.stderr, "\nRun 'redis-ops COMMAND --help' for the flags of a command.\n%s\n", exitCodeHelp)
}

// newFlagSet returns a flag set whose --help prints the description, flags
// and exit codes.
func (e *env) newFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: redis-ops %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
		fmt.Fprintf(e.stderr, "\n%s\n", exitCodeHelp)
	}
	return fs
}

// parse parses flags, turning a flag error into a usage error, and checks
// every numeric and duration flag against flagRanges.
func parse(fs *flag.FlagSet, args []string) error {
	if err := checkRanges(fs); err != nil { // the defaults: a flag missing in flagRanges
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return withCode(ExitUsage, errReported)
	}
	return checkRanges(fs)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
