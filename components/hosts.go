package components

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// Host is one Docker host of a multi-host stack (the "hosts" setting): how Pulumi reaches its engine
// and the address the other hosts reach its published ports on.
type Host struct {
	// Name names the host in placements and in resource names: lower-case letters, digits and -, at
	// most 32, unique. Required.
	Name string `json:"name"`
	// Docker is the docker provider's host for this engine: ssh://user@db-1, tcp://db-1:2376 (TLS
	// material in the hostsTls secret) or unix:///path/docker.sock. Required.
	Docker string `json:"docker"`
	// Address is the host's IP address on the network between the hosts: its Redis and Sentinel ports
	// are published on it, and announced to the Sentinels and the clients. Required, unique.
	Address string `json:"address"`
	// SSHOpts are extra ssh options for an ssh:// engine (e.g. ["-i", "/home/ci/.ssh/deploy"]).
	// Defaults to none.
	SSHOpts []string `json:"sshOpts"`
}

// HostTLS is the TLS material of a tcp:// engine (the "hostsTls" secret, by host name), as PEM text.
type HostTLS struct {
	// CA is the CA certificate that signed the engine's certificate.
	CA string `json:"caMaterial"`
	// Cert and Key are the client certificate and key Pulumi presents to the engine.
	Cert string `json:"certMaterial"`
	Key  string `json:"keyMaterial"`
}

// Placement puts the nodes of a multi-host sentinel topology on hosts, by host name.
type Placement struct {
	// Data are the hosts of the data nodes, node 0 (the initial primary) first: topology.replicas+1
	// distinct hosts. Defaults to the hosts in order.
	Data []string `json:"data"`
	// Sentinels are the hosts of the Sentinels, one per Sentinel: no host may hold so many that losing
	// it leaves fewer than the quorum or fewer than a majority. Defaults to the hosts in order.
	Sentinels []string `json:"sentinels"`
}

var hostNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// ValidateHosts checks the hosts setting (key "hosts"); an empty list is a single-host stack.
func ValidateHosts(hosts []Host, tls map[string]HostTLS) error {
	v := &validator{prefix: "hosts"}
	names, addrs := map[string]bool{}, map[string]bool{}
	for i, h := range hosts {
		key := fmt.Sprintf("[%d].", i)
		if !hostNameRe.MatchString(h.Name) {
			v.fail(key+"name", h.Name, "accepted: lower-case letters, digits and - (32 at most), starting and ending with a letter or digit, e.g. db-1")
		} else if names[h.Name] {
			v.fail(key+"name", h.Name, "accepted: a name no other host has")
		}
		names[h.Name] = true
		if !dockerHostOK(h.Docker) {
			v.fail(key+"docker", h.Docker, "accepted: the engine's address as the docker provider dials it: ssh://user@db-1, tcp://db-1:2376 or unix:///var/run/docker.sock")
		}
		ip, err := netip.ParseAddr(h.Address)
		switch {
		case err != nil || ip.IsUnspecified() || ip.IsLoopback() || ip.Zone() != "":
			v.fail(key+"address", h.Address, "accepted: the host's IP address that the other hosts reach it by (its ports are published on it), not a name, 0.0.0.0 or loopback")
		case addrs[ip.String()]:
			v.fail(key+"address", h.Address, "accepted: an address no other host has")
		}
		addrs[ip.String()] = true
		for j, o := range h.SSHOpts {
			if o == "" || strings.ContainsFunc(o, unicode.IsControl) {
				v.fail(fmt.Sprintf("%ssshOpts[%d]", key, j), o, "accepted: non-empty ssh arguments without control characters")
			}
		}
		if _, ok := tls[h.Name]; ok && !strings.HasPrefix(h.Docker, "tcp://") {
			v.fail(key+"docker", h.Docker, "hostsTls has material for "+h.Name+"; accepted: a tcp:// engine (TLS material is for tcp:// only)")
		}
	}
	for name, m := range tls {
		if !names[name] {
			v.errs = append(v.errs, fmt.Errorf("hostsTls.%s: no host of that name; accepted: names from hosts", name))
		}
		if m.CA == "" || m.Cert == "" || m.Key == "" {
			v.errs = append(v.errs, fmt.Errorf("hostsTls.%s: caMaterial, certMaterial and keyMaterial are all required (PEM text)", name))
		}
	}
	return errors.Join(v.errs...)
}

func dockerHostOK(host string) bool {
	for _, scheme := range []string{"unix://", "tcp://", "ssh://"} {
		if rest, ok := strings.CutPrefix(host, scheme); ok && rest != "" && !strings.ContainsFunc(rest, unicode.IsSpace) {
			return true
		}
	}
	return false
}

// Place returns the topology with its placement filled in (the hosts in order where it is empty)
// and checks it against the hosts: every name known, the data nodes on distinct hosts, and no host
// whose loss leaves fewer Sentinels than the quorum or than a majority. Keys are "topology.placement.*".
func (t Topology) Place(hosts []Host) (Topology, error) {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	roundRobin := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = names[i%len(names)]
		}
		return out
	}
	if len(t.Placement.Data) == 0 {
		t.Placement.Data = roundRobin(t.Replicas + 1)
	}
	if len(t.Placement.Sentinels) == 0 {
		t.Placement.Sentinels = roundRobin(t.Sentinels)
	}
	v := &validator{prefix: "topology.placement."}
	known := "accepted: names from hosts (" + strings.Join(names, ", ") + ")"
	check := func(key string, list []string, want int, what string) bool {
		ok := true
		if len(list) != want {
			v.fail(key, list, fmt.Sprintf("accepted: %d host names, one per %s", want, what))
			ok = false
		}
		for i, n := range list {
			if !slices.Contains(names, n) {
				v.fail(fmt.Sprintf("%s[%d]", key, i), n, known)
				ok = false
			}
		}
		return ok
	}
	if check("data", t.Placement.Data, t.Replicas+1, "data node (topology.replicas+1, the initial primary first)") {
		seen := map[string]bool{}
		for _, n := range t.Placement.Data {
			if seen[n] {
				v.fail("data", t.Placement.Data, fmt.Sprintf("%s holds two data nodes, so losing it takes two copies of the queued tasks; "+
					"accepted: %d distinct hosts (or fewer topology.replicas)", n, t.Replicas+1))
				break
			}
			seen[n] = true
		}
	}
	if check("sentinels", t.Placement.Sentinels, t.Sentinels, "Sentinel (topology.sentinels)") {
		need := max(t.Quorum, t.Sentinels/2+1)
		count := map[string]int{}
		for _, n := range t.Placement.Sentinels {
			count[n]++
		}
		most := t.Sentinels - need // Sentinels one host may hold
		for _, n := range names {
			if left := t.Sentinels - count[n]; left < need {
				accepted := fmt.Sprintf("accepted: at most %d Sentinels per host (with %d Sentinels: at least %d hosts)", most, t.Sentinels, (t.Sentinels+most-1)/max(most, 1))
				if most == 0 {
					accepted = "accepted: a topology.quorum below topology.sentinels, so that one lost host cannot block every failover"
				}
				v.fail("sentinels", t.Placement.Sentinels, fmt.Sprintf("losing %s leaves %d of %d Sentinels, fewer than the %d a failover needs (quorum %d, majority %d); %s",
					n, left, t.Sentinels, need, t.Quorum, t.Sentinels/2+1, accepted))
				break
			}
		}
	}
	return t, errors.Join(v.errs...)
}

// HostNamed is the host named name (the zero Host when unknown).
func HostNamed(hosts []Host, name string) Host {
	for _, h := range hosts {
		if h.Name == name {
			return h
		}
	}
	return Host{}
}

// ValidateWorkerPlacement checks emailService.placement against the host names of the stack (none:
// a single host, where the placement must be empty).
func ValidateWorkerPlacement(placement map[string]int, hosts []string) error {
	var errs []error
	keys := make([]string, 0, len(placement))
	for h := range placement {
		keys = append(keys, h)
	}
	slices.Sort(keys)
	for _, h := range keys {
		key := "emailService.placement." + h
		switch n := placement[h]; {
		case len(hosts) == 0:
			errs = append(errs, &redisconf.FieldError{Key: key, Value: n, Accepted: "a placement needs the hosts setting; accepted: empty on a single host"})
		case !slices.Contains(hosts, h):
			errs = append(errs, &redisconf.FieldError{Key: key, Value: n, Accepted: "no host of that name; accepted: names from hosts (" + strings.Join(hosts, ", ") + ")"})
		case n < 1 || n > 32:
			errs = append(errs, &redisconf.FieldError{Key: key, Value: n, Accepted: "accepted: 1 to 32 workers on the host"})
		}
	}
	return errors.Join(errs...)
}

// TLSOn reports whether a topology spread over hosts (multiHost) uses TLS between them.
func (t Topology) TLSOn(multiHost bool) bool { return multiHost && (t.TLS == nil || *t.TLS) }

// CheckTLS checks topology.tls against the hosts and the ports it publishes.
func (t Topology) CheckTLS(cfg redisconf.Config, multiHost bool) error {
	switch {
	case t.TLS != nil && *t.TLS && !multiHost:
		return &redisconf.FieldError{Key: "topology.tls", Value: true,
			Accepted: "TLS protects the traffic between hosts and needs the hosts setting; accepted: false or unset on a single host"}
	case t.TLSOn(multiHost) && cfg.Port == 65535:
		return &redisconf.FieldError{Key: "redis.port", Value: cfg.Port,
			Accepted: "with topology.tls the TLS port is redis.port+1; accepted: 1 to 65534"}
	case multiHost && cfg.Port == redisconf.SentinelPort:
		// Published on a host address: a data node's redis.port and a Sentinel's 26379, or with TLS
		// their TLS ports alone, redis.port+1 and 26380. Only one port collides either way.
		return &redisconf.FieldError{Key: "redis.port", Value: cfg.Port,
			Accepted: "across hosts a data node publishes redis.port (redis.port+1 with TLS) beside a Sentinel's 26379 (26380 with TLS) on one host address; accepted: any port but 26379"}
	}
	return nil
}
