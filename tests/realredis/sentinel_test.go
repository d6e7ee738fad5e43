package realredis_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/deployment/ops"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// health runs `redis-ops health` against one node of the topology, with the Sentinels' view.
func health(t *testing.T, top *realredis.Topology, node *realredis.Process) (string, int) {
	t.Helper()
	var sentinels []string
	for _, s := range top.Sentinels {
		sentinels = append(sentinels, s.Addr())
	}
	var out, errOut bytes.Buffer
	code := ops.Run(context.Background(), []string{"health", "--addr", node.Addr(), "--sentinels", strings.Join(sentinels, ","),
		"--master-name", top.Master, "--timeout", "2s"}, &out, &errOut)
	return strings.TrimSpace(out.String() + errOut.String()), code
}

// TestOpsHealthUnderstandsTheSentinelTopology checks that `redis-ops health` reports the primary, its
// replicas and their lag, a replica's link, and the Sentinels' view, before and after a failover.
func TestOpsHealthUnderstandsTheSentinelTopology(t *testing.T) {
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel","downAfterMilliseconds":2000,"failoverTimeoutMilliseconds":20000}`)
	t.Setenv("REDIS_PASSWORD", top.Ops)
	t.Setenv("REDIS_SENTINEL_PASSWORD", top.Sentinel)

	line, code := health(t, top, top.Nodes[0])
	require.Equal(t, ops.ExitOK, code, line)
	assert.Contains(t, line, "role primary replicas 2 lag ")
	assert.Contains(t, line, "sentinel "+top.Master+"="+top.Nodes[0].Addr()+" quorum ok (3 usable)")
	line, code = health(t, top, top.Nodes[1])
	require.Equal(t, ops.ExitOK, code, line)
	assert.Contains(t, line, "role replica of "+top.Nodes[0].IP+":6379 link up")

	top.Nodes[0].Kill9()
	_, code = health(t, top, top.Nodes[0])
	assert.Equal(t, ops.ExitUnreachable, code, "the killed primary is unreachable")
	var promoted *realredis.Process
	require.Eventually(t, func() bool {
		for _, n := range top.Nodes[1:] {
			if l, c := health(t, top, n); c == ops.ExitOK && strings.Contains(l, "role primary") && strings.Contains(l, "sentinel "+top.Master+"="+n.Addr()) {
				promoted = n
				return true
			}
		}
		return false
	}, 60*time.Second, 500*time.Millisecond, "a replica is promoted and the Sentinels report it")
	t.Logf("after the failover: %s", func() string { l, _ := health(t, top, promoted); return l }())
}
