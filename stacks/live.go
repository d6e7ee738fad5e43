package stacks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/deployment/dockerexec"
)

// livePrimaryTimeout bounds the whole question to the Sentinels at deploy time.
const livePrimaryTimeout = 10 * time.Second

// LivePrimary asks a deployed Sentinel topology which data node is its primary now: it runs
// `SENTINEL get-master-addr-by-name` in each Sentinel container on the Docker engine at host (the
// stack's docker:host) until one answers with a data node's alias. The answer orders the replacement
// of the data nodes (the primary last). It returns "" with no error when no Sentinel container exists
// (nothing deployed yet), and "" with an error saying why when it cannot tell.
func LivePrimary(host string, c components.RedisContainer, t components.Topology) (string, error) {
	if strings.HasPrefix(host, "ssh://") {
		return "", fmt.Errorf("docker:host %s: the program asks the Sentinels only over unix:// and tcp:// engines", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), livePrimaryTimeout)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return "", fmt.Errorf("docker:host %s: %w", host, err)
	}
	defer cli.Close()
	var errs []string
	for _, name := range components.SentinelContainerNames(c, t) {
		out, err := dockerexec.Output(ctx, cli, name, "sh", "-c",
			`REDISCLI_AUTH=$(cat "$0") exec redis-cli --no-auth-warning -p "$1" SENTINEL get-master-addr-by-name "$2"`,
			redisconf.SentinelPasswordFile, fmt.Sprint(redisconf.SentinelPort), t.MasterName)
		if client.IsErrNotFound(err) {
			continue // not deployed (yet)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		alias := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		for i := 0; i <= t.Replicas; i++ {
			if alias == components.NodeAlias(i) {
				return alias, nil
			}
		}
		errs = append(errs, fmt.Sprintf("%s answered %q, not a data node alias", name, strings.TrimSpace(out)))
	}
	if len(errs) == 0 {
		return "", nil
	}
	return "", fmt.Errorf("no Sentinel named the primary: %s", strings.Join(errs, "; "))
}
