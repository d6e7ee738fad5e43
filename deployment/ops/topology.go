package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// sentinelFlags are the flags that make a command follow a Sentinel topology: it asks the Sentinels
// for the current primary (and its replicas) instead of using --addr, which then names only the data
// node whose data dir is mounted (backup) or is unused (metrics).
type sentinelFlags struct {
	// addrs is a comma-separated host:port list of the Sentinels. Defaults to $REDIS_SENTINELS; empty:
	// no Sentinels, --addr is the server.
	addrs string
	// master is the primary's name at the Sentinels. Defaults to $REDIS_SENTINEL_MASTER, else emailclient.
	master string
	// passwordFile holds the Sentinels' password. Defaults to $REDIS_SENTINEL_PASSWORD_FILE; without
	// it the password comes from $REDIS_SENTINEL_PASSWORD (never from a flag value).
	passwordFile string
}

func (e *env) addSentinelFlags(fs *flag.FlagSet) *sentinelFlags {
	s := &sentinelFlags{}
	fs.StringVar(&s.addrs, "sentinels", e.getenv("REDIS_SENTINELS"), "comma-separated host:port of the Sentinels (env REDIS_SENTINELS): follow the primary they name")
	fs.StringVar(&s.master, "master-name", envOr(e.getenv, "REDIS_SENTINEL_MASTER", "emailclient"), "the primary's name at the Sentinels (env REDIS_SENTINEL_MASTER)")
	fs.StringVar(&s.passwordFile, "sentinel-password-file", e.getenv("REDIS_SENTINEL_PASSWORD_FILE"), "file with the Sentinels' password (env REDIS_SENTINEL_PASSWORD_FILE; default: env REDIS_SENTINEL_PASSWORD)")
	return s
}

// list returns the Sentinel addresses (none without --sentinels); a malformed one is a usage error.
func (s *sentinelFlags) list() ([]string, error) {
	var out []string
	for _, a := range strings.Split(s.addrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if err := checkAddr(a); err != nil {
			return nil, withCode(ExitUsage, fmt.Errorf("--sentinels/REDIS_SENTINELS: %q: want host:port", a))
		}
		out = append(out, a)
	}
	return out, nil
}

// password reads the Sentinels' password from --sentinel-password-file, else $REDIS_SENTINEL_PASSWORD.
func (s *sentinelFlags) password(e *env) (string, error) {
	if s.passwordFile == "" {
		return e.getenv("REDIS_SENTINEL_PASSWORD"), nil
	}
	return sentinelPassword(s.passwordFile)
}

// sentinelReport is what one Sentinel says about the master name.
type sentinelReport struct {
	addr     string
	up       bool   // it answered (PING)
	primary  string // host:port of GET-MASTER-ADDR-BY-NAME; "" when it named none
	quorumOK bool   // SENTINEL CKQUORUM succeeded
	epoch    int64  // config-epoch of SENTINEL MASTER (one more per failover); -1 when unknown
	replicas []string
	err      error
}

// querySentinels asks every Sentinel, concurrently, for the primary of master, the quorum, the config
// epoch and the replicas it knows. timeout bounds each Sentinel's calls.
func querySentinels(ctx context.Context, addrs []string, master, password string, timeout time.Duration) []sentinelReport {
	reports := make([]sentinelReport, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = querySentinel(ctx, addr, master, password, timeout)
		}()
	}
	wg.Wait()
	return reports
}

func querySentinel(ctx context.Context, addr, master, password string, timeout time.Duration) sentinelReport {
	r := sentinelReport{addr: addr, epoch: -1}
	s := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password, DialTimeout: timeout, ReadTimeout: timeout,
		WriteTimeout: timeout, MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true})
	defer s.Close()
	if r.err = s.Ping(ctx).Err(); r.err != nil {
		return r
	}
	r.up = true
	p, err := s.GetMasterAddrByName(ctx, master).Result()
	if err != nil || len(p) != 2 {
		r.err = fmt.Errorf("GET-MASTER-ADDR-BY-NAME %s: %v", master, err)
		return r
	}
	r.primary = net.JoinHostPort(p[0], p[1])
	r.quorumOK = s.CkQuorum(ctx, master).Err() == nil
	if m, err := s.Master(ctx, master).Result(); err == nil {
		if v, err := strconv.ParseInt(m["config-epoch"], 10, 64); err == nil {
			r.epoch = v
		}
	}
	if reps, err := s.Replicas(ctx, master).Result(); err == nil {
		for _, rep := range reps { // down ones too: the exporter reports them down
			r.replicas = append(r.replicas, net.JoinHostPort(rep["ip"], rep["port"]))
		}
	}
	return r
}

// agreedPrimary is the primary most answering Sentinels name (on a tie, the one named first), and
// the replicas those Sentinels know; an error when none names one.
func agreedPrimary(reports []sentinelReport, master string) (string, []string, error) {
	votes := map[string]int{}
	best := ""
	for _, r := range reports {
		if r.primary == "" {
			continue
		}
		votes[r.primary]++
		if best == "" || votes[r.primary] > votes[best] {
			best = r.primary
		}
	}
	if best == "" {
		var errs []error
		for _, r := range reports {
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, r.err))
		}
		return "", nil, withCode(ExitTopology, fmt.Errorf("no Sentinel knows a primary for %s: %w", master, errors.Join(errs...)))
	}
	var replicas []string
	for _, r := range reports {
		if r.primary == best {
			for _, rep := range r.replicas {
				if rep != best && !slices.Contains(replicas, rep) {
					replicas = append(replicas, rep)
				}
			}
		}
	}
	sort.Strings(replicas)
	return best, replicas, nil
}

// replicaLags parses the replicas of a primary's INFO replication: "host:port" -> lag in seconds,
// online replicas only (slaveN:ip=...,port=...,state=online,offset=...,lag=...).
func replicaLags(inf info) map[string]float64 {
	out := map[string]float64{}
	for i := int64(0); i < inf.int("connected_slaves"); i++ {
		fields := map[string]string{}
		for _, kv := range strings.Split(inf[fmt.Sprintf("slave%d", i)], ",") {
			k, v, _ := strings.Cut(kv, "=")
			fields[k] = v
		}
		lag, err := strconv.ParseFloat(fields["lag"], 64)
		if fields["state"] != "online" || err != nil || fields["ip"] == "" {
			continue
		}
		out[net.JoinHostPort(fields["ip"], fields["port"])] = lag
	}
	return out
}
