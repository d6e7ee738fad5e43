package celerytest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

// pythonIn runs Debian's python3 in dir with args, with nothing but pythonPath on PYTHONPATH.
func pythonIn(t *testing.T, dir, pythonPath string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(celerytest.Python, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PYTHONPATH=" + pythonPath, "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestBrokerPackageUnitTests runs the emailclient_broker package's own unit tests (settings for every
// topology, refusals naming the variable, outputs, workarounds) with Debian's Celery 5.2.6.
func TestBrokerPackageUnitTests(t *testing.T) {
	celerytest.Require(t)
	pkg, err := celerytest.BrokerPackageDir()
	require.NoError(t, err)
	out, err := pythonIn(t, pkg, pkg, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	t.Log(out)
	require.NoError(t, err, "the package's unit tests fail")
	require.Contains(t, out, "\nOK")
}

// TestBrokerPackageReadsTheEnvContract: the variables emailclient_broker reads are the guide's env
// contract table, but for the reference worker's own (EMAILWORKER_*); tests/declared holds the table
// to what the program declares.
func TestBrokerPackageReadsTheEnvContract(t *testing.T) {
	celerytest.Require(t)
	pkg, err := celerytest.BrokerPackageDir()
	require.NoError(t, err)
	out, err := pythonIn(t, pkg, pkg, "-c", "import json, emailclient_broker as b; print(json.dumps(sorted(b.ENV_VARIABLES)))")
	require.NoError(t, err, out)
	var reads []string
	require.NoError(t, json.Unmarshal([]byte(out), &reads))
	root, err := celerytest.RepoRoot()
	require.NoError(t, err)
	rows, err := declared.EnvContract(root)
	require.NoError(t, err)
	var table []string
	for _, r := range rows {
		if !strings.HasPrefix(r.Variable, "EMAILWORKER_") {
			table = append(table, r.Variable)
		}
	}
	sort.Strings(table)
	assert.Equal(t, table, reads, "emailclient_broker.ENV_VARIABLES and the table of %s", declared.GuideFile)
}

// TestBrokerPackageInstallsWithPip: `pip install ./deployment/python/emailclient-broker` works (here
// into a target directory, offline: no build isolation, Debian's setuptools) and the installed copy
// is the one imported.
func TestBrokerPackageInstallsWithPip(t *testing.T) {
	celerytest.Require(t)
	if _, err := pythonIn(t, t.TempDir(), "", "-m", "pip", "--version"); err != nil {
		t.Fatalf("%s has no pip: apt-get install python3-pip", celerytest.Python)
	}
	pkg, err := celerytest.BrokerPackageDir()
	require.NoError(t, err)
	src := filepath.Join(t.TempDir(), "emailclient-broker") // a copy: the build writes into its source tree
	require.NoError(t, os.CopyFS(src, os.DirFS(pkg)))
	target := t.TempDir()
	out, err := pythonIn(t, t.TempDir(), "", "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--target", target, src)
	require.NoError(t, err, "pip install:\n%s", out)
	out, err = pythonIn(t, t.TempDir(), target, "-c", "import emailclient_broker as b; print(b.__file__); b.celery_settings({'CELERY_BROKER_URL': 'redis://celery:x@redis:6379/0', 'CELERY_RESULT_BACKEND': 'redis://celery:x@redis:6379/0'})")
	require.NoError(t, err, out)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(out), target), "imported from the installed copy: %s", out)
}
