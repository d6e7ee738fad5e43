package celerystack_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// producerResult is the JSON line of examples/producer.py.
type producerResult struct {
	Sent, Completed int
	Errors          []string
	Error           string
}

// runProducer writes outputs as `pulumi stack output --json --show-secrets` prints them and runs the
// emailclient_broker package's example producer on them, with nothing on PYTHONPATH but that package
// and no CELERY_* variable in its environment: a user's service outside Docker, which has only the
// outputs and the package.
func runProducer(t *testing.T, outputs map[string]any, count int) producerResult {
	t.Helper()
	pkg, err := celerytest.BrokerPackageDir()
	require.NoError(t, err)
	data, err := json.Marshal(outputs)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "outputs.json")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, celerytest.Python, filepath.Join(pkg, "examples", "producer.py"), file,
		"--count", strconv.Itoa(count), "--timeout", "60")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PYTHONPATH=" + pkg, "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"}
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var res producerResult
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), "producer output %q (exit: %v)", out, err)
	return res
}

// plainOutputs are the declared stack outputs as plain JSON values, with each string passed through move.
func plainOutputs(t *testing.T, stack string, opts declared.Options, move func(string) string) map[string]any {
	t.Helper()
	outs, err := declared.Outputs(stack, opts)
	require.NoError(t, err)
	plain := map[string]any{}
	for k, o := range outs {
		if s, ok := o.Value.(string); ok {
			plain[k] = move(s)
		} else {
			plain[k] = o.Value
		}
	}
	return plain
}

// TestProducerFromStackOutputsOnSentinel: a producer configured by celery_settings_from_outputs alone
// (the outputs of a Sentinel stack) enqueues through the Sentinels, and the email-service's worker runs
// its tasks. Before the package, a plain Celery client with the sentinel:// URLs failed with "No master
// found", then WRONGPASS from the result backend (the ACL user dropped, celery#10013).
func TestProducerFromStackOutputsOnSentinel(t *testing.T) {
	celerytest.Require(t)
	topology := `{"mode":"sentinel"}`
	top := realredis.StartSentinel(t, "dev", topology)
	outputs := plainOutputs(t, "dev", declared.Options{Config: map[string]string{"topology": topology, "container": `{"hostPort":0}`}}, top.Local)
	require.Contains(t, outputs["celeryBrokerUrl"], "sentinel://")
	celerytest.StartWorker(t, top.Env)
	res := runProducer(t, outputs, 5)
	require.Empty(t, res.Error)
	assert.Equal(t, 5, res.Completed, "every task round-trips through the Sentinels: %+v", res.Errors)

	// The outputs shown without --show-secrets: refused, naming the output, before any connection.
	hidden := map[string]any{}
	for k, v := range outputs {
		hidden[k] = v
	}
	hidden["sentinelPassword"] = "[secret]"
	assert.Contains(t, runProducer(t, hidden, 1).Error, "output sentinelPassword is hidden: use `pulumi stack output --json --show-secrets`")
}

// TestProducerFromStackOutputsOnStandalone: dev publishes Redis on the host (redisHostAddress); a
// producer outside Docker is pointed there, since the URLs' alias resolves only on the stack's network.
func TestProducerFromStackOutputsOnStandalone(t *testing.T) {
	celerytest.Require(t)
	b := realredis.Start(t, "dev", realredis.Options{})
	outputs := plainOutputs(t, "dev", declared.Options{}, func(s string) string { return s })
	require.Equal(t, "redis://celery:", outputs["celeryBrokerUrl"].(string)[:len("redis://celery:")])
	// The address this test's server is published on, in place of the declared 127.0.0.1:6379.
	outputs["redisHostAddress"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port()))
	celerytest.StartWorker(t, declaredEnv(t, declared.Options{}, b))
	res := runProducer(t, outputs, 5)
	require.Empty(t, res.Error)
	assert.Equal(t, 5, res.Completed, "every task round-trips: %+v", res.Errors)

	delete(outputs, "celeryEnv")
	assert.Contains(t, runProducer(t, outputs, 1).Error, "output celeryEnv is missing")
}
