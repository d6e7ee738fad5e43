package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// replicationSummary describes a node's place in a replicated topology from INFO replication:
// "role master replicas 2 lag 0s/1s", "role replica of redis-0:6379 link up", or "" for a standalone
// primary without replicas. problem is set when a replica has lost its primary.
func replicationSummary(inf info) (summary, problem string) {
	switch inf["role"] {
	case "slave":
		link := inf["master_link_status"]
		summary = fmt.Sprintf("role replica of %s:%s link %s", inf["master_host"], inf["master_port"], link)
		if link != "up" {
			problem = "replica lost its primary " + inf["master_host"] + ":" + inf["master_port"]
		}
		return summary, problem
	case "master":
		n := inf.int("connected_slaves")
		if n == 0 {
			return "", ""
		}
		lags := make([]string, 0, n)
		for i := int64(0); i < n; i++ {
			for _, field := range strings.Split(inf[fmt.Sprintf("slave%d", i)], ",") {
				if v, ok := strings.CutPrefix(field, "lag="); ok {
					lags = append(lags, v+"s")
				}
			}
		}
		return fmt.Sprintf("role primary replicas %d lag %s", n, strings.Join(lags, "/")), ""
	}
	return "role " + inf["role"], ""
}

// sentinelView asks the first reachable Sentinel for the primary of master and whether the Sentinels
// have a quorum: "sentinel emailclient=redis-1:6379 quorum ok (3 usable)".
func sentinelView(ctx context.Context, addrs []string, master, password string) (string, error) {
	var errs []error
	for _, addr := range addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password})
		primary, err := s.GetMasterAddrByName(ctx, master).Result()
		if err == nil {
			var quorum string
			quorum, err = s.CkQuorum(ctx, master).Result()
			s.Close()
			if err != nil {
				return "", withCode(ExitTopology, fmt.Errorf("sentinel %s: primary %s:%s but no quorum: %v", addr, primary[0], primary[1], err))
			}
			usable := strings.Fields(quorum)
			n := ""
			if len(usable) > 1 {
				n = " (" + usable[1] + " usable)"
			}
			return fmt.Sprintf("sentinel %s=%s:%s quorum ok%s", master, primary[0], primary[1], n), nil
		}
		s.Close()
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return "", withCode(ExitTopology, fmt.Errorf("no Sentinel knows a primary for %s: %w", master, errors.Join(errs...)))
}

// sentinelPassword reads the Sentinels' password from a file, or REDIS_SENTINEL_PASSWORD.
func sentinelPassword(file string) (string, error) {
	if file == "" {
		return os.Getenv("REDIS_SENTINEL_PASSWORD"), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", withCode(ExitUsage, fmt.Errorf("--sentinel-password-file: %w", err))
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
