package redisconf

import (
	"fmt"
	"strconv"
	"strings"
)

// Files of the sentinel topology, next to the standalone ones in RunDir.
const (
	// SecretsFile is included by every data node's redis.conf: masterauth for replication. It is the only
	// config file of a data node that holds a plain-text password (Redis needs it in plain text to
	// authenticate to its primary), private to the redis user like the rest of RunDir.
	SecretsFile = RunDir + "/secrets.conf"
	// SentinelConfigFile is the uploaded sentinel.conf. Sentinel must rewrite its config, so the
	// entrypoint copies it to SentinelStateFile on the sentinel's own data volume.
	SentinelConfigFile = RunDir + "/sentinel.conf"
	// SentinelStateFile is the writable copy Sentinel runs with (mode 0600).
	SentinelStateFile = DataDir + "/sentinel.conf"
	// SentinelPasswordFile holds the Sentinels' password for the sentinel healthcheck.
	SentinelPasswordFile = RunDir + "/sentinel.password"
	// SentinelPort is the port every Sentinel listens on.
	SentinelPort = 26379
	// SentinelTLSPort is a Sentinel's TLS port, the one published across hosts with TLS on.
	SentinelTLSPort = SentinelPort + 1
)

// TLSPort is a data node's TLS port, the one published across hosts with TLS on: Port+1.
func (c Config) TLSPort() int { return c.Port + 1 }

// Node is one data node of a sentinel topology.
type Node struct {
	// Announce is the node's network alias (its host's address across hosts), announced to the
	// Sentinels and replicas.
	Announce string
	// AnnouncePort is the port announced with it (the published port across hosts); 0: the node's own.
	AnnouncePort int
	// TLSPort, when set, adds a TLS listener on that port (the one published to the other hosts) and
	// makes replication use TLS: see TLSDirectives.
	TLSPort int
	// ReplicaOf is the primary's alias (address across hosts); empty for the initial primary.
	ReplicaOf string
	// ReplicaOfPort is the primary's port as this node reaches it (its TLS port with TLS); 0: Port.
	ReplicaOfPort int
	// MinReplicasToWrite makes the primary refuse writes (loudly) unless this many replicas are
	// connected with a lag of at most MinReplicasMaxLag seconds; it bounds what a failover can lose.
	MinReplicasToWrite int
	// MinReplicasMaxLag is the lag bound in seconds.
	MinReplicasMaxLag int
	// Replicas is the number of replicas of the topology: a primary starts the (diskless) full sync as
	// soon as that many wait for it, instead of after repl-diskless-sync-delay (5 s); after a primary
	// restart its replicas must resync before min-replicas-to-write lets writes in again.
	Replicas int
}

// NodeDirectives are the directives of a data node: the standalone configuration plus replication.
// Every node can become a replica after a failover, so every node authenticates to its primary.
func (c Config) NodeDirectives(n Node) []Directive {
	d := func(name string, args ...string) Directive { return Directive{Name: name, Args: args} }
	out := append(c.Directives(),
		d("replica-announce-ip", n.Announce),
		d("masteruser", ReplicaUser),
		d("include", SecretsFile),
		d("replica-read-only", "yes"),
		d("replica-serve-stale-data", "yes"),
		d("repl-diskless-sync", "yes"),
		d("repl-diskless-sync-max-replicas", strconv.Itoa(n.Replicas)),
		d("min-replicas-to-write", strconv.Itoa(n.MinReplicasToWrite)),
		d("min-replicas-max-lag", strconv.Itoa(n.MinReplicasMaxLag)),
	)
	if n.AnnouncePort != 0 {
		out = append(out, d("replica-announce-port", strconv.Itoa(n.AnnouncePort)))
	}
	if n.TLSPort != 0 {
		out = append(out, TLSDirectives(n.TLSPort)...)
	}
	if n.ReplicaOf != "" {
		port := n.ReplicaOfPort
		if port == 0 {
			port = c.Port
		}
		out = append(out, d("replicaof", n.ReplicaOf, strconv.Itoa(port)))
	}
	return out
}

// RenderNode returns the redis.conf of a data node of a sentinel topology.
func (c Config) RenderNode(n Node) string { return renderDirectives(c.NodeDirectives(n)) }

// SecretsConf renders SecretsFile for a data node: the replica user's password.
func SecretsConf(replicaPassword string) string {
	return "masterauth " + confQuote(replicaPassword) + "\n"
}

// Sentinel is the configuration of one Sentinel.
type Sentinel struct {
	// Announce is the Sentinel's network alias (its host's address across hosts).
	Announce string
	// AnnouncePort is the port announced with it (the published port across hosts); 0: SentinelPort.
	AnnouncePort int
	// TLSPort, when set, adds a TLS listener (announced as AnnouncePort) and makes the Sentinel reach
	// the data nodes and the other Sentinels over TLS (see TLSDirectives).
	TLSPort int
	// MasterName is the name Celery asks the Sentinels for.
	MasterName string
	// Primary is the initial primary's alias; Port its port.
	Primary string
	Port    int
	// Quorum is the number of Sentinels that must agree the primary is down.
	Quorum int
	// DownAfterMilliseconds is how long the primary must be unreachable to be considered down.
	DownAfterMilliseconds int
	// FailoverTimeoutMilliseconds bounds a failover.
	FailoverTimeoutMilliseconds int
}

// Render returns sentinel.conf. It holds the sentinel user's password (to reach the data nodes) and
// the Sentinels' own password in plain text, as Sentinel requires: it is uploaded as a secret and
// copied to a 0600 file.
func (s Sentinel) Render(sentinelUserPassword, sentinelPassword string) string {
	m := s.MasterName
	lines := []string{
		"# sentinel.conf rendered by emailclient-infra; Sentinel rewrites its copy in " + SentinelStateFile + ".",
		"port " + strconv.Itoa(SentinelPort),
		"bind * -::*",
		"daemonize no",
		`logfile ""`,
		"dir " + DataDir,
		"requirepass " + confQuote(sentinelPassword),
		"sentinel sentinel-pass " + confQuote(sentinelPassword),
		"sentinel resolve-hostnames yes",
		"sentinel announce-hostnames yes",
		"sentinel announce-ip " + s.Announce,
	}
	if s.AnnouncePort != 0 {
		lines = append(lines, "sentinel announce-port "+strconv.Itoa(s.AnnouncePort))
	}
	if s.TLSPort != 0 {
		lines = append(lines, renderDirectivesLines(TLSDirectives(s.TLSPort))...)
	}
	lines = append(lines,
		fmt.Sprintf("sentinel monitor %s %s %d %d", m, s.Primary, s.Port, s.Quorum),
		fmt.Sprintf("sentinel auth-user %s %s", m, SentinelUser),
		fmt.Sprintf("sentinel auth-pass %s %s", m, confQuote(sentinelUserPassword)),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", m, s.DownAfterMilliseconds),
		fmt.Sprintf("sentinel failover-timeout %s %d", m, s.FailoverTimeoutMilliseconds),
		fmt.Sprintf("sentinel parallel-syncs %s 1", m),
	)
	return strings.Join(lines, "\n") + "\n"
}

// confQuote quotes a value for redis.conf: double quotes, with backslash, quote and every byte outside
// printable ASCII escaped, so no value can end the line or the string early.
func confQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TLS files of a node or Sentinel of a multi-host topology, uploaded with the others.
const (
	// TLSCertFile and TLSKeyFile are the node's certificate (signed by the broker's CA, naming its host
	// address) and key; the key is as secret as a password.
	TLSCertFile = RunDir + "/tls.crt"
	TLSKeyFile  = RunDir + "/tls.key"
	// TLSCAFile is the broker's CA certificate, which every node and client trusts.
	TLSCAFile = RunDir + "/tls-ca.crt"
)

// TLSDirectives add a TLS listener on port next to the plain one, which stays for the containers on
// the host's own network (healthcheck, operations) and is not published. Replication and Sentinel's
// connections to data nodes and to other Sentinels use TLS (tls-replication). Clients authenticate
// with their ACL password as on the plain port: no client certificate is asked for.
func TLSDirectives(port int) []Directive {
	d := func(name string, args ...string) Directive { return Directive{Name: name, Args: args} }
	return []Directive{
		d("tls-port", strconv.Itoa(port)),
		d("tls-cert-file", TLSCertFile),
		d("tls-key-file", TLSKeyFile),
		d("tls-ca-cert-file", TLSCAFile),
		d("tls-auth-clients", "no"),
		d("tls-replication", "yes"),
	}
}
