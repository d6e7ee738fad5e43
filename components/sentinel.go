package components

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// buildSentinel declares the data nodes (node 0 is the initial primary) and the Sentinels.
func (b *RedisBroker) buildSentinel(ctx *pulumi.Context, name string, env *nodeEnv, celeryPw, opsPw, monitorPw pulumi.StringOutput) error {
	args := env.args
	c, t := args.Container, args.Topology
	sentinelPw, err := passwordOrGenerated(ctx, name+"-sentinel-password", nil, args.Rotation, env.parent)
	if err != nil {
		return err
	}
	// The data nodes' own users for replication and for the Sentinels (the admin password stays with
	// the backup container and the operators).
	replicaPw, replicaPrev, err := rotatingPassword(ctx, name+"-replica-password", args.Rotation, env.parent)
	if err != nil {
		return err
	}
	sentinelUserPw, sentinelUserPrev, err := rotatingPassword(ctx, name+"-sentinel-user-password", args.Rotation, env.parent)
	if err != nil {
		return err
	}
	// Nodes find each other by network alias on one host, by host address across hosts, there on
	// their TLS ports with topology.tls.
	primary, primarySite := NodeAlias(0), env.sites[siteOf(args, 0)]
	if primarySite.Address != "" {
		primary = primarySite.Address
	}
	tlsOn := t.TLSOn(len(args.Hosts) > 0)
	dataPort, sentinelPort := args.Config.Port, redisconf.SentinelPort
	tlsSeed := pulumi.String("").ToStringOutput()
	b.TLSCA = tlsSeed
	if tlsOn {
		dataPort, sentinelPort = args.Config.TLSPort(), redisconf.SentinelTLSPort
		// Generated once and never rotated: nodes replaced one at a time by a rotation must keep
		// trusting each other (see BrokerCA for the certificates' lifetime).
		if tlsSeed, err = passwordOrGenerated(ctx, name+"-tls-seed", nil, 0, env.parent); err != nil {
			return err
		}
		b.TLSCA = tlsSeed.ApplyT(func(seed string) (string, error) {
			ca, err := brokerCA(seed, name)
			if err != nil {
				return "", err
			}
			return ca.CertPEM(), nil
		}).(pulumi.StringOutput)
	}
	dataSfx, sentinelSfx := nodeSuffixes(t)
	containers := make([]pulumi.Resource, t.Replicas+1)
	var previous []pulumi.Resource // the node replaced before this one
	for _, i := range replacementOrder(t, args.Primary) {
		site := env.sites[siteOf(args, i)]
		n := redisconf.Node{Announce: NodeAlias(i), MinReplicasToWrite: t.MinReplicasToWrite, MinReplicasMaxLag: t.MinReplicasMaxLag, Replicas: t.Replicas}
		var published docker.ContainerPortArray
		if site.Address != "" {
			n.Announce, n.AnnouncePort = site.Address, dataPort
			published = publish(site.Address, dataPort)
		}
		if tlsOn {
			n.TLSPort = dataPort
		}
		if i > 0 {
			n.ReplicaOf, n.ReplicaOfPort = primary, dataPort
		}
		uploads := pulumi.All(celeryPw, opsPw, monitorPw, replicaPw, sentinelUserPw, replicaPrev, sentinelUserPrev, tlsSeed).ApplyT(func(pws []any) ([]docker.ContainerUpload, error) {
			p := passwords(pws)
			files := RuntimeFiles(args.Config, p)
			files[0] = upload(redisconf.ConfigFile, args.Config.RenderNode(n))
			// Replicas authenticate with the previous rotation's password, which the nodes of both
			// generations accept while a rotation replaces them one at a time (the same before the first).
			files = append(files, upload(redisconf.SecretsFile, redisconf.SecretsConf(p.ReplicaPrevious)))
			tls, err := tlsUploads(pws[7].(string), name, NodeAlias(i), n.Announce)
			return append(files, tls...), err
		}).(docker.ContainerUploadArrayOutput)
		hostPath := ""
		if c.DataHostPath != "" {
			hostPath = nodeHostPath(c.DataHostPath, t, i)
		}
		suffix := dataSfx[i]
		var former resourceNames
		if i == 0 {
			// The initial primary is the standalone broker's successor: the same resources by alias
			// and the same data volume, so switching the mode keeps the queued tasks (and back).
			former = dataNodeResources(name, "")
		}
		container, err := env.node(ctx, node{
			resourceNames: dataNodeResources(name, suffix), former: former,
			container: c.Name + suffix, alias: NodeAlias(i), volume: dataVolumeName(c.Volume, suffix, i), hostPath: hostPath,
			// "node": the entrypoint runs it from a copy in /data that keeps the role the Sentinels gave it.
			command: []string{"node", redisconf.ConfigFile}, uploads: uploads, stopGrace: c.StopGrace(args.Config),
			dependsOn: after(args.Primary, previous), ops: i == 0, site: site, ports: published,
		})
		if err != nil {
			return err
		}
		if i == 0 {
			b.Container, b.ContainerName = container, container.Name
		}
		containers[i], previous = container, []pulumi.Resource{container}
	}
	b.DataNodes = containers
	b.Containers = append([]pulumi.Resource(nil), containers...)
	// The Sentinels never depend on each other: they turn healthy together (quorum), so Pulumi must
	// create them in parallel. Deployed, they depend on the data nodes, so that a change replaces them
	// (and lands their new files) after the data nodes. Not deployed yet, they are created alongside the
	// data nodes, which saves a healthcheck wave: a Sentinel retries the primary's alias every second
	// until it resolves (announce-hostnames keeps the alias in its config), and turns healthy once the
	// Sentinels have found each other through the primary.
	dataNodes := after(args.Primary, b.DataNodes)
	var hosts, endpoints []string
	for j := 1; j <= t.Sentinels; j++ {
		site := env.sites[sentinelSite(args, j)]
		cfg := redisconf.Sentinel{Announce: SentinelAlias(j), MasterName: t.MasterName, Primary: primary, Port: args.Config.Port,
			Quorum: t.Quorum, DownAfterMilliseconds: t.DownAfterMilliseconds, FailoverTimeoutMilliseconds: t.FailoverTimeoutMilliseconds}
		var published docker.ContainerPortArray
		if site.Address != "" {
			cfg.Announce, cfg.AnnouncePort = site.Address, sentinelPort
			published = publish(site.Address, sentinelPort)
		}
		if tlsOn {
			cfg.Port, cfg.TLSPort = dataPort, sentinelPort
		}
		uploads := pulumi.All(sentinelUserPw, sentinelPw, tlsSeed).ApplyT(func(pws []any) ([]docker.ContainerUpload, error) {
			tls, err := tlsUploads(pws[2].(string), name, SentinelAlias(j), cfg.Announce)
			return append([]docker.ContainerUpload{
				upload(redisconf.SentinelConfigFile, cfg.Render(pws[0].(string), pws[1].(string))),
				upload(redisconf.SentinelPasswordFile, pws[1].(string)),
			}, tls...), err
		}).(docker.ContainerUploadArrayOutput)
		suffix := sentinelSfx[j-1]
		container, err := env.node(ctx, node{
			resourceNames: resourceNames{resource: name + suffix, runVolume: name + suffix + "-run", dataVolume: name + suffix + "-data"},
			container:     c.Name + suffix, alias: SentinelAlias(j), volume: c.Volume + suffix,
			command: []string{"sentinel"}, uploads: uploads, dependsOn: dataNodes, stopGrace: sentinelStopGraceSeconds,
			site: site, ports: published,
		})
		if err != nil {
			return err
		}
		b.Containers = append(b.Containers, container)
		hosts = append(hosts, cfg.Announce)
		endpoints = append(endpoints, fmt.Sprintf("%s:%d", cfg.Announce, sentinelPort))
	}
	b.Host = pulumi.String(strings.Join(hosts, ",")).ToStringOutput()
	if !tlsOn {
		env.ops.Sentinels, env.ops.MasterName = endpoints, t.MasterName
	}
	b.BrokerURL = pulumi.ToSecret(celeryPw.ApplyT(func(pw string) string {
		return SentinelURLs(pw, endpoints, args.Database)
	})).(pulumi.StringOutput)
	b.ResultBackendURL = b.BrokerURL
	b.SentinelPassword = sentinelPw
	return nil
}

// brokerCA is the CA of the broker name, derived from its generated TLS seed.
func brokerCA(seed, name string) (*BrokerCA, error) {
	sum := sha256.Sum256([]byte(seed))
	return NewBrokerCA(sum[:], name)
}

// tlsUploads are the TLS files of the node or Sentinel alias of the broker name (its certificate for
// its alias and host address, its key and the CA); none without TLS (seed "").
func tlsUploads(seed, name, alias, address string) ([]docker.ContainerUpload, error) {
	if seed == "" {
		return nil, nil
	}
	ca, err := brokerCA(seed, name)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(alias, []string{address, alias})
	if err != nil {
		return nil, err
	}
	return []docker.ContainerUpload{
		upload(redisconf.TLSCertFile, cert),
		upload(redisconf.TLSKeyFile, key),
		upload(redisconf.TLSCAFile, ca.CertPEM()),
	}, nil
}

// after is previous once the topology is deployed (primary set), none when nothing is deployed yet
// (primary ""): a data node depends on the one replaced before it, so a change never takes two data
// nodes down together, and a Sentinel on the data nodes; a first deploy creates them all together.
func after(primary string, previous []pulumi.Resource) []pulumi.Resource {
	if primary == "" {
		return nil
	}
	return previous
}

// replacementOrder is the order in which the data nodes are declared, each depending on the one
// before: the replicas by index, then the current primary (an alias; empty or unknown: redis-0).
func replacementOrder(t Topology, primary string) []int {
	last := 0
	for i := 0; i <= t.Replicas; i++ {
		if NodeAlias(i) == primary {
			last = i
		}
	}
	var order []int
	for i := 0; i <= t.Replicas; i++ {
		if i != last {
			order = append(order, i)
		}
	}
	return append(order, last)
}

// SentinelContainerNames are the Docker names of the Sentinels of a sentinel topology.
func SentinelContainerNames(c RedisContainer, t Topology) []string {
	_, sfx := nodeSuffixes(t)
	names := make([]string, len(sfx))
	for j, s := range sfx {
		names[j] = c.Name + s
	}
	return names
}

// NodeAlias is the network alias of data node i of a sentinel topology (redis-0 is the initial primary).
func NodeAlias(i int) string { return fmt.Sprintf("%s-%d", RedisAlias, i) }

// SentinelAlias is the network alias of Sentinel j (from 1).
func SentinelAlias(j int) string { return fmt.Sprintf("sentinel-%d", j) }

// SentinelURLs is the Celery URL of a sentinel topology: one sentinel:// URL per Sentinel endpoint
// (host:port), joined by ";" (kombu's syntax); the credentials are the celery user's, used for the
// primary it finds.
func SentinelURLs(password string, endpoints []string, db int) string {
	urls := make([]string, len(endpoints))
	for j, e := range endpoints {
		urls[j] = fmt.Sprintf("sentinel://%s:%s@%s/%d", redisconf.CeleryUser, escapeAll(password), e, db)
	}
	return strings.Join(urls, ";")
}
