package stacks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
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
// `SENTINEL get-master-addr-by-name` in each Sentinel container, on the engine of its host (the
// stack's docker:host, or its host's engine across hosts), until one answers with a data node's alias
// or, across hosts, its host's address. The answer orders the replacement of the data nodes (the
// primary last). It returns "" with no error when no Sentinel container exists (nothing deployed
// yet), and "" with an error saying why when it cannot tell.
func LivePrimary(s Settings) (string, error) {
	t := s.Topology
	ctx, cancel := context.WithTimeout(context.Background(), livePrimaryTimeout)
	defer cancel()
	// What a Sentinel may answer, to the data node alias it names.
	nodes := map[string]string{}
	for i := 0; i <= t.Replicas; i++ {
		nodes[components.NodeAlias(i)] = components.NodeAlias(i)
		if len(s.Hosts) > 0 {
			nodes[components.HostNamed(s.Hosts, t.Placement.Data[i]).Address] = components.NodeAlias(i)
		}
	}
	var errs []string
	clients := map[string]*client.Client{}
	defer func() {
		for _, cli := range clients {
			cli.Close()
		}
	}()
	for j, name := range components.SentinelContainerNames(s.Container, t) {
		engine := s.DockerHost
		if len(s.Hosts) > 0 {
			if h := components.HostNamed(s.Hosts, t.Placement.Sentinels[j]); h.Docker != "" {
				engine = h.Docker
			}
		}
		if strings.HasPrefix(engine, "ssh://") {
			errs = append(errs, fmt.Sprintf("%s: the program asks the Sentinels only over unix:// and tcp:// engines, not %s", name, engine))
			continue
		}
		cli, ok := clients[engine]
		if !ok {
			var err error
			opts := []client.Opt{client.WithHost(engine), client.WithAPIVersionNegotiation()}
			if len(s.Hosts) > 0 {
				if m, tls := s.HostsTLS[t.Placement.Sentinels[j]]; tls {
					opts = append(opts, withTLSMaterial(m))
				}
			}
			if cli, err = client.NewClientWithOpts(opts...); err != nil {
				errs = append(errs, fmt.Sprintf("%s: engine %s: %v", name, engine, err))
				continue
			}
			clients[engine] = cli
		}
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
		answer := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		if alias, ok := nodes[answer]; ok {
			return alias, nil
		}
		errs = append(errs, fmt.Sprintf("%s answered %q, not a data node", name, strings.TrimSpace(out)))
	}
	if len(errs) == 0 {
		return "", nil
	}
	return "", fmt.Errorf("no Sentinel named the primary: %s", strings.Join(errs, "; "))
}

// withTLSMaterial is a docker client option that dials a tcp:// engine with TLS from PEM material
// (hostsTls), as the docker provider does.
func withTLSMaterial(m components.HostTLS) client.Opt {
	return func(c *client.Client) error {
		pair, err := tls.X509KeyPair([]byte(m.Cert), []byte(m.Key))
		if err != nil {
			return fmt.Errorf("hostsTls certMaterial/keyMaterial: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(m.CA)) {
			return fmt.Errorf("hostsTls caMaterial: no PEM certificate")
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}
		if err := client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}})(c); err != nil {
			return err
		}
		return client.WithScheme("https")(c)
	}
}
