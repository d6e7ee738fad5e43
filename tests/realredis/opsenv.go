package realredis

import (
	"strings"
	"testing"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

// OpsEnv evaluates the program for stack with the sentinel topology and config (which must enable
// the container: operations.backup or operations.metrics), and returns the env it declares for the
// operations container role ("backup" or "metrics"), with the network aliases moved to top's
// loopback addresses and the run directory to node 0's. The mocks' passwords are the same in every
// evaluation, so the env's passwords are top's.
func (top *Topology) OpsEnv(t testing.TB, stack, topology string, config map[string]string, role string) map[string]string {
	t.Helper()
	cfg := map[string]string{"topology": topology, "container": `{"hostPort":0}`}
	for k, v := range config {
		cfg[k] = v
	}
	r, err := declared.Run(stack, declared.Options{Config: cfg})
	if err != nil {
		t.Fatalf("program for %s: %v", stack, err)
	}
	c, ok := r.Get(declared.ContainerType, "ops-"+role)
	if !ok {
		t.Fatalf("the program declares no ops-%s container", role)
	}
	envs := c.Inputs["envs"]
	if envs.IsSecret() {
		envs = envs.SecretValue().Element
	}
	out := map[string]string{}
	for _, kv := range envs.ArrayValue() {
		k, v, _ := strings.Cut(kv.StringValue(), "=")
		out[k] = strings.Replace(top.local(v), redisconf.RunDir+"/", top.Nodes[0].RunDir+"/", 1)
	}
	return out
}
