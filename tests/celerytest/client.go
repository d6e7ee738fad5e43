package celerytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Result is the JSON line printed by `python3 -m emailworker.client`.
type Result struct {
	Mode             string   `json:"mode"`
	Sent             int      `json:"sent"`
	Completed        int      `json:"completed"`
	Failed           int      `json:"failed"`
	Pending          int      `json:"pending"`
	EnqueueSeconds   float64  `json:"enqueue_seconds"`
	RoundtripSeconds float64  `json:"roundtrip_seconds"`
	TaskIDs          []string `json:"task_ids"`
	// PendingIDs and FailedIDs (collect and send) are the tasks without a result when the client
	// gave up and those whose result is a failure.
	PendingIDs []string `json:"pending_ids"`
	FailedIDs  []string `json:"failed_ids"`
	// Queue and Unacked (queue) are the primary's messages of the default queue and the values of
	// its unacknowledged hash, raw (see QueuedIDs).
	Queue   []string       `json:"queue"`
	Unacked []string       `json:"unacked"`
	Errors  []string       `json:"errors"`
	Workers map[string]int `json:"workers"`
	// ResultKey is the celery-task-meta-<id> key of the first completed task;
	// ResultDB is the db of the backend URL, ResultTTL the key's TTL in
	// seconds, ResultKeyDBs the dbs (0-15) in which the key exists.
	ResultKey      string `json:"result_key"`
	ResultDB       int    `json:"result_db"`
	ResultTTL      int64  `json:"result_ttl"`
	ResultKeyDBs   []int  `json:"result_key_dbs"`
	ResultKeyError string `json:"result_key_error"`
	// Error is set when the client could not run: a configuration error
	// (exit 2, naming the variable) or a broker error (exit 1), whose
	// exception class is ErrorClass, raised ElapsedSeconds after the start.
	Error          string  `json:"error"`
	ErrorClass     string  `json:"error_class"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Outcomes are the produce mode's enqueues, by task number.
	Outcomes []Outcome `json:"outcomes"`

	// ExitCode, Stdout and Stderr are filled in by the harness; Stdout and
	// Stderr are the raw output, for assertions that nothing secret (or
	// nothing at all, on stderr) is printed.
	ExitCode int    `json:"-"`
	Stdout   string `json:"-"`
	Stderr   string `json:"-"`
}

// Outcome is one enqueue of the produce mode: task I (id <prefix>-<I>) started T seconds after the
// producer did (Unix time Wall) and returned Duration seconds later, acknowledged unless Error says
// why it was refused.
type Outcome struct {
	I        int     `json:"i"`
	T        float64 `json:"t"`
	Wall     float64 `json:"w"`
	Duration float64 `json:"dt"`
	Error    string  `json:"error"`
}

// Started is when the enqueue began.
func (o Outcome) Started() time.Time { return time.UnixMicro(int64(o.Wall * 1e6)) }

// Returned is when the enqueue returned (acknowledged or refused).
func (o Outcome) Returned() time.Time {
	return o.Started().Add(time.Duration(o.Duration * float64(time.Second)))
}

// Produce runs `python3 -m emailworker.client produce`: count send_email tasks with ids
// <prefix>-<i>, task i due i*interval after the start, taken in turn by threads producers that each
// wait for their own enqueue. Every enqueue's outcome is in Result.Outcomes; timeout bounds the run.
func Produce(env map[string]string, prefix string, count, threads int, interval, timeout time.Duration) (Result, error) {
	return RunClient(env, timeout, "produce", "--count", fmt.Sprint(count), "--threads", fmt.Sprint(threads),
		"--interval", seconds(interval), "--prefix", prefix)
}

// EnqueuePerSecond is Sent / EnqueueSeconds (0 when not measured).
func (r Result) EnqueuePerSecond() float64 {
	if r.EnqueueSeconds <= 0 {
		return 0
	}
	return float64(r.Sent) / r.EnqueueSeconds
}

// RoundtripPerSecond is Completed / RoundtripSeconds (0 when not measured).
func (r Result) RoundtripPerSecond() float64 {
	if r.RoundtripSeconds <= 0 {
		return 0
	}
	return float64(r.Completed) / r.RoundtripSeconds
}

// RunClient runs `python3 -m emailworker.client ARGS...` with exactly env
// (plus PATH, HOME and PYTHONPATH) and parses its JSON line. It returns an
// error only when the client produced no JSON line; a Result with Error set
// (configuration or broker error) is returned with a nil error. timeout
// bounds the whole run (plus ClientGrace).
func RunClient(env map[string]string, timeout time.Duration, args ...string) (Result, error) {
	workDir, err := WorkerDir()
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+ClientGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python, append([]string{"-m", "emailworker.client"}, args...)...)
	cmd.Dir = os.TempDir()
	cmd.Env = processEnv(env, workDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		res.ExitCode = exitErr.ExitCode()
	} else if runErr != nil {
		return res, fmt.Errorf("celerytest: client: %w", runErr)
	}
	line := lastLine(stdout.String())
	if line == "" || json.Unmarshal([]byte(line), &res) != nil {
		return res, fmt.Errorf("celerytest: client printed no JSON line (exit %d): %s",
			res.ExitCode, Redact(lastLines(stderr.String()+stdout.String(), 15), env))
	}
	return res, nil
}

// Client runs the client like RunClient and fails the test when it produced
// no JSON line. Configuration and broker errors come back in Result.Error.
func Client(t testing.TB, env map[string]string, timeout time.Duration, args ...string) Result {
	t.Helper()
	Require(t)
	res, err := RunClient(env, timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Send sends count send_email tasks and waits up to timeout for all results.
// It fails the test when the client could not run at all (Result.Error);
// completed, failed and pending counts are for the caller to assert.
func Send(t testing.TB, env map[string]string, count int, timeout time.Duration) Result {
	t.Helper()
	res := Client(t, env, timeout, "send", "--count", fmt.Sprint(count), "--timeout", seconds(timeout))
	if res.Error != "" {
		t.Fatalf("celerytest: send: %s", Redact(res.Error, env))
	}
	return res
}

// Enqueue sends count send_email tasks without waiting for results; the ids
// are in Result.TaskIDs, for Collect.
func Enqueue(t testing.TB, env map[string]string, count int) Result {
	t.Helper()
	res := Client(t, env, time.Minute, "enqueue", "--count", fmt.Sprint(count))
	if res.Error != "" {
		t.Fatalf("celerytest: enqueue: %s", Redact(res.Error, env))
	}
	return res
}

// Collect waits up to timeout for the results of ids (from Enqueue or Send).
func Collect(t testing.TB, env map[string]string, ids []string, timeout time.Duration) Result {
	t.Helper()
	if len(ids) == 0 {
		return Result{Mode: "collect"}
	}
	args := append([]string{"collect", "--timeout", seconds(timeout)}, ids...)
	res := Client(t, env, timeout, args...)
	if res.Error != "" {
		t.Fatalf("celerytest: collect: %s", Redact(res.Error, env))
	}
	return res
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
