// Package reliability_test is the reliability and security suite of issue 7: faults with a real
// redis-server running the declared configuration, hostile settings and CLI arguments, access
// control and secret hygiene. Every scenario logs its figure as a "FIGURE ..." line; RELIABILITY.md
// lists them with the commands that reproduce them.
package reliability_test

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// projectRoot is the directory holding Pulumi.yaml.
func projectRoot(t testing.TB) string {
	t.Helper()
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	return root
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// tool returns the path of a command of this repository (redis-ops, redis-config), built once per
// test binary into a temp dir.
func tool(t testing.TB, name string) string {
	t.Helper()
	binOnce.Do(func() {
		if dir := os.Getenv(binDirEnv); dir != "" { // a parent test run built them
			binDir = dir
			return
		}
		root, err := stacks.FindRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "emailclient-reliability-bin-"); binErr != nil {
			return
		}
		for _, cmd := range []string{"redis-ops", "redis-config"} {
			build := exec.Command(goTool(), "build", "-o", filepath.Join(binDir, cmd), "./deployment/cmd/"+cmd)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				binErr = &buildError{cmd: cmd, out: string(out), err: err}
				return
			}
		}
	})
	if binErr != nil {
		t.Fatalf("build the repository's commands: %v", binErr)
	}
	return filepath.Join(binDir, name)
}

// binDirEnv passes the built commands to a child test process.
const binDirEnv = "EMAILCLIENT_RELIABILITY_BIN_DIR"

type buildError struct {
	cmd, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.cmd + ": " + e.err.Error() + "\n" + e.out }

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" && os.Getenv(binDirEnv) == "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cliResult is what one run of a command printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) all() string { return r.stdout + r.stderr }

// runTool runs one of the repository's commands in dir with args and extra env.
func runTool(t testing.TB, name, dir string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run %s: %v", name, err)
		code = ee.ExitCode()
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// redisIDs returns the uid and gid of the redis user (Debian's redis-server package creates it).
func redisIDs(t testing.TB) (int, int) {
	t.Helper()
	u, err := user.Lookup("redis")
	require.NoError(t, err, "the redis user")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// expectFailOptions are the options realredis.Start used for b, to start the same declared
// configuration through the same entrypoint with redistest.StartExpectFail.
func expectFailOptions(t testing.TB, b *realredis.Broker) redistest.Options {
	return redistest.Options{
		ConfigFile: filepath.Join(b.RunDir, "redis.conf"),
		Dir:        b.DataDir,
		Entrypoint: realredis.Entrypoint(t, b.Root),
		Env:        []string{"REDIS_RUN_DIR=" + b.RunDir, "REDIS_DATA_DIR=" + b.DataDir},
	}
}

// strings of a property value, secrets included (walked into), for searching.
func propertyStrings(v resource.PropertyValue) []string {
	switch {
	case v.IsSecret():
		return propertyStrings(v.SecretValue().Element)
	case v.IsString():
		return []string{v.StringValue()}
	case v.IsArray():
		var out []string
		for _, e := range v.ArrayValue() {
			out = append(out, propertyStrings(e)...)
		}
		return out
	case v.IsObject():
		var out []string
		for k, e := range v.ObjectValue() {
			out = append(out, string(k))
			out = append(out, propertyStrings(e)...)
		}
		return out
	case v.IsOutput():
		return propertyStrings(v.OutputValue().Element)
	case v.IsComputed():
		return propertyStrings(v.Input().Element)
	}
	return []string{v.String()}
}

// containsAny reports which of the needles occur in s (by index, never the needle itself, so that a
// failure message does not print a secret).
func containsAny(s string, needles ...string) (int, bool) {
	for i, n := range needles {
		if n != "" && strings.Contains(s, n) {
			return i, true
		}
	}
	return -1, false
}

// noSecret fails the test when s contains one of the secrets, without printing either.
func noSecret(t testing.TB, s, where string, secrets ...string) {
	t.Helper()
	if i, found := containsAny(s, secrets...); found {
		t.Errorf("%s contains secret #%d in plain text (not printed here)", where, i)
	}
}
