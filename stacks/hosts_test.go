package stacks_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

// threeHosts is a multi-host sentinel stack on the dev profile: three hosts, the default placement
// (data node i and Sentinel i+1 on host i+1), two workers on db-2 and one on db-3.
var threeHosts = declared.Options{Config: map[string]string{
	"hosts": `[{"name":"db-1","docker":"ssh://deploy@db-1","address":"10.0.0.11","sshOpts":["-p","2222"]},` +
		`{"name":"db-2","docker":"tcp://db-2:2376","address":"10.0.0.12"},` +
		`{"name":"db-3","docker":"unix:///run/db-3.sock","address":"10.0.0.13"}]`,
	"topology":     `{"mode":"sentinel"}`,
	"container":    `{"hostPort":0}`,
	"emailService": `{"placement":{"db-2":2,"db-3":1}}`,
}}

var hostAddr = map[string]string{"db-1": "10.0.0.11", "db-2": "10.0.0.12", "db-3": "10.0.0.13"}

func TestMultiHostDeclaresOneProviderPerHostAndPlacesTheNodes(t *testing.T) {
	r := run(t, "dev", threeHosts)
	providers := map[string]string{}
	for _, p := range r.ByType("pulumi:providers:docker") {
		providers[p.Name] = p.Inputs["host"].StringValue()
	}
	assert.Equal(t, map[string]string{"docker-db-1": "ssh://deploy@db-1", "docker-db-2": "tcp://db-2:2376", "docker-db-3": "unix:///run/db-3.sock"}, providers)
	p1, _ := r.Get("pulumi:providers:docker", "docker-db-1")
	assert.Equal(t, []string{"-p", "2222"}, strs(p1.Inputs["sshOpts"]))

	// Every Docker resource is on an explicit host provider: none lands on the shell's engine.
	for _, res := range r.Resources {
		if strings.HasPrefix(res.Type, "docker:index/") {
			assert.NotEmpty(t, res.Provider, "%s %s has a host's provider", res.Type, res.Name)
		}
	}
	for i := 0; i <= 2; i++ {
		host := fmt.Sprintf("db-%d", i+1)
		node := fmt.Sprintf("broker-redis-%d", i)
		res := resOf(t, r, node)
		assert.Equal(t, "docker-"+host, res.Provider, node)
		ports := res.Inputs["ports"].ArrayValue()
		require.Len(t, ports, 1, node)
		assert.Equal(t, hostAddr[host], ports[0].ObjectValue()["ip"].StringValue(), "published on its host's address")
		assert.Equal(t, float64(6380), ports[0].ObjectValue()["external"].NumberValue(), "only the TLS port is published")
		assert.Equal(t, "docker-"+host, resOf(t, r, node+"-files").Provider, "its files carrier and volumes are on its host")
		assert.Equal(t, "docker-"+host, resOf(t, r, fmt.Sprintf("broker-data-%d", i)).Provider)
		conf := uploadsOf(t, r, node)[redisconf.ConfigFile]
		assert.Contains(t, conf, "\nreplica-announce-ip "+hostAddr[host]+"\n")
		assert.Contains(t, conf, "\nreplica-announce-port 6380\n")
		assert.Contains(t, conf, "\ntls-port 6380\n")
		assert.Contains(t, conf, "\ntls-replication yes\n")
		if i > 0 {
			assert.Contains(t, conf, "\nreplicaof 10.0.0.11 6380\n", "replicas dial the primary's host address, over TLS")
		}
		sentinel := fmt.Sprintf("broker-sentinel-%d", i+1)
		s := resOf(t, r, sentinel)
		assert.Equal(t, "docker-"+host, s.Provider)
		assert.Equal(t, float64(redisconf.SentinelTLSPort), s.Inputs["ports"].ArrayValue()[0].ObjectValue()["external"].NumberValue())
		sconf := uploadsOf(t, r, sentinel)[redisconf.SentinelConfigFile]
		assert.Contains(t, sconf, "\nsentinel announce-ip "+hostAddr[host]+"\n")
		assert.Contains(t, sconf, "\nsentinel announce-port 26380\n")
		assert.Contains(t, sconf, "\ntls-port 26380\n")
		assert.Contains(t, sconf, "\nsentinel monitor emailclient 10.0.0.11 6380 2\n")
		img, ok := r.Get(declared.ImageType, "broker-image-"+host)
		require.True(t, ok, "each host builds its own Redis image (no registry)")
		assert.Equal(t, "docker-"+host, img.Provider)
		assert.Equal(t, "docker-"+host, resOf(t, r, "broker-network-"+host).Provider)
	}
	// Workers: two on db-2, one on db-3, each host with its own build, all with the Sentinels' addresses.
	workers := map[string]string{}
	for _, c := range r.ByType(declared.ContainerType) {
		if strings.HasPrefix(c.Name, "email-service-container") {
			workers[c.Inputs["name"].StringValue()] = c.Provider
			env := envMap(t, c.Inputs)
			for _, addr := range []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"} {
				assert.Contains(t, env["CELERY_BROKER_URL"], "@"+addr+":26380/0")
			}
			assert.NotContains(t, c.DependsOn, "broker-redis-0", "dev: workers start alongside the data nodes (emailService.waitForRedis)")
		}
	}
	assert.Equal(t, map[string]string{"emailclient-dev-email-service-db-2-1": "docker-db-2", "emailclient-dev-email-service-db-2-2": "docker-db-2",
		"emailclient-dev-email-service-db-3-1": "docker-db-3"}, workers)
	for _, h := range []string{"db-2", "db-3"} {
		img, ok := r.Get(declared.ImageType, "email-service-image-"+h)
		require.True(t, ok, "the reference worker is built on %s", h)
		assert.Equal(t, "docker-"+h, img.Provider)
	}
	_, ok := r.Get(declared.ImageType, "email-service-image-db-1")
	assert.False(t, ok, "no worker on db-1, no build there")
}

func TestSingleHostStacksDeclareNoHostProviders(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := run(t, stack, declared.Options{})
		assert.Empty(t, r.ByType("pulumi:providers:docker"), stack)
		for _, res := range r.Resources {
			assert.Empty(t, res.Provider, "%s: %s on the default provider (docker:host)", stack, res.Name)
		}
		_, ok := r.Get(declared.ImageType, "broker-image")
		assert.True(t, ok, "%s keeps its resource names", stack)
	}
}

func TestMultiHostPlacementIsConfigurable(t *testing.T) {
	cfg := maps.Clone(threeHosts.Config)
	cfg["hosts"] = strings.TrimSuffix(cfg["hosts"], "]") + `,{"name":"app-1","docker":"ssh://deploy@app-1","address":"10.0.0.21"}]`
	cfg["topology"] = `{"mode":"sentinel","placement":{"data":["db-3","db-1","db-2"],"sentinels":["db-1","db-2","app-1"]}}`
	cfg["emailService"] = `{"placement":{"app-1":1}}`
	r := run(t, "dev", declared.Options{Config: cfg})
	assert.Equal(t, "docker-db-3", resOf(t, r, "broker-redis-0").Provider, "the initial primary on db-3")
	assert.Contains(t, uploadsOf(t, r, "broker-redis-1")[redisconf.ConfigFile], "\nreplicaof 10.0.0.13 6380\n")
	assert.Equal(t, "docker-app-1", resOf(t, r, "broker-sentinel-3").Provider)
	assert.Equal(t, "docker-app-1", resOf(t, r, "email-service-container-app-1-1").Provider)
	_, ok := r.Get(declared.ImageType, "broker-image-app-1")
	assert.True(t, ok, "app-1 runs a Sentinel: it builds the Redis image")
}

func TestHostsTLSMaterialReachesTheProviderAsSecrets(t *testing.T) {
	r := run(t, "dev", declared.Options{Config: threeHosts.Config,
		Secrets: map[string]string{"hostsTls": `{"db-2":{"caMaterial":"CA PEM","certMaterial":"CERT PEM","keyMaterial":"KEY PEM"}}`}})
	p, ok := r.Get("pulumi:providers:docker", "docker-db-2")
	require.True(t, ok)
	for key, want := range map[string]string{"caMaterial": "CA PEM", "certMaterial": "CERT PEM", "keyMaterial": "KEY PEM"} {
		assert.Equal(t, want, plain(t, p.Inputs[resource.PropertyKey(key)], true).StringValue(), key)
	}
}

// badHosts are multi-host settings that must fail before any resource is registered.
func TestBadHostsAndPlacementsAreRefused(t *testing.T) {
	host := func(name, docker, addr string) string {
		return fmt.Sprintf(`{"name":%q,"docker":%q,"address":%q}`, name, docker, addr)
	}
	three := "[" + host("db-1", "ssh://a@db-1", "10.0.0.11") + "," + host("db-2", "ssh://a@db-2", "10.0.0.12") + "," + host("db-3", "ssh://a@db-3", "10.0.0.13") + "]"
	two := "[" + host("db-1", "ssh://a@db-1", "10.0.0.11") + "," + host("db-2", "ssh://a@db-2", "10.0.0.12") + "]"
	sentinel := `{"mode":"sentinel"}`
	for _, tc := range []struct {
		name            string
		config, secrets map[string]string
		key, accepts    string
	}{
		{"hosts without sentinel", map[string]string{"hosts": three}, nil, "topology.mode", "sentinel"},
		{"duplicate name", map[string]string{"hosts": "[" + host("db-1", "ssh://a@db-1", "10.0.0.11") + "," + host("db-1", "ssh://a@db-2", "10.0.0.12") + "," + host("db-3", "ssh://a@db-3", "10.0.0.13") + "]", "topology": sentinel}, nil, "hosts[1].name", "no other host"},
		{"bad name", map[string]string{"hosts": "[" + host("DB 1", "ssh://a@db-1", "10.0.0.11") + "]", "topology": sentinel}, nil, "hosts[0].name", "lower-case"},
		{"name as address", map[string]string{"hosts": "[" + host("db-1", "ssh://a@db-1", "db-1.internal") + "]", "topology": sentinel}, nil, "hosts[0].address", "IP address"},
		{"loopback address", map[string]string{"hosts": "[" + host("db-1", "ssh://a@db-1", "127.0.0.1") + "]", "topology": sentinel}, nil, "hosts[0].address", "not a name, 0.0.0.0 or loopback"},
		{"duplicate address", map[string]string{"hosts": "[" + host("db-1", "ssh://a@db-1", "10.0.0.11") + "," + host("db-2", "ssh://a@db-2", "10.0.0.11") + "]", "topology": sentinel}, nil, "hosts[1].address", "no other host"},
		{"engine scheme", map[string]string{"hosts": "[" + host("db-1", "http://db-1", "10.0.0.11") + "]", "topology": sentinel}, nil, "hosts[0].docker", "ssh://"},
		{"two hosts cannot hold a quorum", map[string]string{"hosts": two, "topology": sentinel}, nil, "topology.placement.sentinels", "losing db-1 leaves 1 of 3 Sentinels"},
		{"two data nodes on one host", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","placement":{"data":["db-1","db-2","db-1"]}}`}, nil, "topology.placement.data", "two copies"},
		{"two Sentinels on one host", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","placement":{"sentinels":["db-1","db-1","db-2"]}}`}, nil, "topology.placement.sentinels", "at most 1 Sentinels per host"},
		{"quorum of every Sentinel", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","quorum":3}`}, nil, "topology.placement.sentinels", "quorum below"},
		{"unknown host in placement", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","placement":{"data":["db-1","db-2","db-9"]}}`}, nil, "topology.placement.data[2]", "names from hosts"},
		{"placement length", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","placement":{"data":["db-1","db-2"]}}`}, nil, "topology.placement.data", "3 host names"},
		{"placement without hosts", map[string]string{"topology": `{"mode":"sentinel","placement":{"data":["db-1","db-2","db-3"]}}`, "container": `{"hostPort":0}`}, nil, "topology.placement", "needs the hosts setting"},
		{"workers on an unknown host", map[string]string{"hosts": three, "topology": sentinel, "emailService": `{"placement":{"app-9":1}}`}, nil, "emailService.placement.app-9", "names from hosts"},
		{"too many workers", map[string]string{"hosts": three, "topology": sentinel, "emailService": `{"placement":{"db-1":99}}`}, nil, "emailService.placement.db-1", "1 to 32"},
		{"workers without hosts", map[string]string{"emailService": `{"placement":{"db-1":1}}`}, nil, "emailService.placement.db-1", "needs the hosts setting"},
		{"hosts not a list", map[string]string{"hosts": `{"name":"db-1"}`, "topology": sentinel}, nil, "hosts", "a list"},
		{"tls in plain text", map[string]string{"hosts": three, "topology": sentinel, "hostsTls": `{"db-1":{}}`}, nil, "hostsTls", "secret"},
		{"tls for an unknown host", map[string]string{"hosts": three, "topology": sentinel}, map[string]string{"hostsTls": `{"db-9":{"caMaterial":"a","certMaterial":"b","keyMaterial":"c"}}`}, "hostsTls.db-9", "names from hosts"},
		{"registry on one host", map[string]string{"registry": `{"server":"registry.example.com"}`}, nil, "registry.server", "multi-host"},
		{"registry with a scheme", map[string]string{"hosts": three, "topology": sentinel, "registry": `{"server":"https://registry.example.com"}`}, nil, "registry.server", "without a scheme"},
		{"registry user without password", map[string]string{"hosts": three, "topology": sentinel, "registry": `{"server":"registry.example.com","username":"ci"}`}, nil, "registryPassword", "required with registry.username"},
		{"registry password in plain text", map[string]string{"hosts": three, "topology": sentinel, "registry": `{"server":"r.example.com","username":"ci"}`, "registryPassword": "token"}, nil, "registryPassword", "secret"},
		{"redis tls on one host", map[string]string{"topology": `{"mode":"sentinel","tls":true}`}, nil, "topology.tls", "needs the hosts setting"},
		{"redis tls port out of range", map[string]string{"hosts": three, "topology": sentinel, "redis": `{"port":65535}`}, nil, "redis.port", "1 to 65534"},
		{"redis port beside the Sentinels'", map[string]string{"hosts": three, "topology": sentinel, "redis": `{"port":26379}`}, nil, "redis.port", "any port but 26379"},
		{"redis port beside the Sentinels', tls off", map[string]string{"hosts": three, "topology": `{"mode":"sentinel","tls":false}`, "redis": `{"port":26379}`}, nil, "redis.port", "any port but 26379"},
		{"tls for an ssh host", map[string]string{"hosts": three, "topology": sentinel}, map[string]string{"hostsTls": `{"db-1":{"caMaterial":"a","certMaterial":"b","keyMaterial":"c"}}`}, "hosts[0].docker", "tcp://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]string{"container": `{"hostPort":0}`}
			for k, v := range tc.config {
				cfg[k] = v
			}
			r, err := declared.Run("dev", declared.Options{Config: cfg, Secrets: tc.secrets})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.key+":")
			assert.Contains(t, err.Error(), tc.accepts)
			assert.Empty(t, r.Resources, "nothing is declared")
		})
	}
}

// TestMultiHostOutputsNameTheFirstWorkerAndTheSentinelAddresses awaits the outputs a user reads with
// `pulumi stack output`: the email-service container is the first worker (hosts in name order), and
// redisHost lists the Sentinels' host addresses.
func TestMultiHostOutputsNameTheFirstWorkerAndTheSentinelAddresses(t *testing.T) {
	var d *stacks.Deployment
	_, err := declared.Run("dev", declared.Options{Config: threeHosts.Config, Program: func(ctx *pulumi.Context) error {
		var err error
		d, err = stacks.Deploy(ctx)
		return err
	}})
	require.NoError(t, err)
	ctx := context.Background()
	name, err := internals.UnsafeAwaitOutput(ctx, d.EmailService.ContainerName)
	require.NoError(t, err)
	assert.Equal(t, "emailclient-dev-email-service-db-2-1", name.Value)
	host, err := internals.UnsafeAwaitOutput(ctx, d.Broker.Host)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.11,10.0.0.12,10.0.0.13", host.Value)
	ca, err := internals.UnsafeAwaitOutput(ctx, d.Broker.TLSCA)
	require.NoError(t, err)
	assert.Contains(t, ca.Value, "-----BEGIN CERTIFICATE-----", "the CA that Program exports as redisTlsCa")
}

// TestRegistryBuildsOncePushesAndPullsByDigestOnEveryHost: with a registry, the first host builds and
// pushes each image once, and every host that runs it pulls it by digest (the same bits everywhere).
func TestRegistryBuildsOncePushesAndPullsByDigestOnEveryHost(t *testing.T) {
	cfg := maps.Clone(threeHosts.Config)
	cfg["registry"] = `{"server":"registry.example.com:5000","username":"ci"}`
	r := run(t, "dev", declared.Options{Config: cfg, Secrets: map[string]string{"registryPassword": "registry-token"}})
	for _, img := range []struct{ resource, tag string }{{"broker-image", "emailclient-redis:dev"}, {"email-service-image", "emailclient-email-worker:emailclient-dev-email-service"}} {
		built := r.ByType(declared.ImageType)
		var names []string
		for _, b := range built {
			names = append(names, b.Name)
		}
		pushed, ok := r.Get(declared.ImageType, img.resource)
		require.True(t, ok, "one build of %s: %v", img.resource, names)
		assert.Equal(t, "registry.example.com:5000/emailclient/"+img.tag, pushed.Inputs["imageName"].StringValue())
		assert.False(t, pushed.Inputs["skipPush"].BoolValue(), "pushed")
		reg := pushed.Inputs["registry"].ObjectValue()
		assert.Equal(t, "ci", reg["username"].StringValue())
		assert.Equal(t, "registry-token", plain(t, reg["password"], true).StringValue())
	}
	assert.Len(t, r.ByType(declared.ImageType), 2, "no per-host builds")
	pulls := map[string]string{}
	for _, p := range r.ByType("docker:index/remoteImage:RemoteImage") {
		pulls[p.Name] = p.Provider
		assert.Equal(t, declared.MockImageID(strings.SplitN(p.Name, "-image-", 2)[0]+"-image"), p.Inputs["name"].StringValue(), "pulled by the pushed digest")
	}
	assert.Equal(t, map[string]string{"broker-image-db-1": "docker-db-1", "broker-image-db-2": "docker-db-2", "broker-image-db-3": "docker-db-3",
		"email-service-image-db-2": "docker-db-2", "email-service-image-db-3": "docker-db-3"}, pulls)
	p, _ := r.Get("pulumi:providers:docker", "docker-db-3")
	auth := p.Inputs["registryAuth"].ArrayValue()
	require.Len(t, auth, 1, "every host's engine pulls with the registry's credentials")
	assert.Equal(t, "registry.example.com:5000", auth[0].ObjectValue()["address"].StringValue())
	assert.Equal(t, "registry-token", plain(t, auth[0].ObjectValue()["password"], true).StringValue())
}

// TestMultiHostTLSCertificatesNameTheirHosts: every data node and Sentinel gets a certificate for its
// alias and host address from the stack's CA, which the workers trust; the same CA and certificates
// on every run (a preview shows no change); the key travels only in the secret uploads.
func TestMultiHostTLSCertificatesNameTheirHosts(t *testing.T) {
	r := run(t, "dev", threeHosts)
	again := run(t, "dev", threeHosts)
	worker := resOf(t, r, "email-service-container-db-2-1")
	ca := envMap(t, worker.Inputs)["CELERY_REDIS_TLS_CA"]
	require.Contains(t, ca, "BEGIN CERTIFICATE")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(ca)))
	for i := 0; i <= 2; i++ {
		host := fmt.Sprintf("db-%d", i+1)
		for _, node := range []string{fmt.Sprintf("broker-redis-%d", i), fmt.Sprintf("broker-sentinel-%d", i+1)} {
			files := uploadsOf(t, r, node)
			assert.Equal(t, ca, files[redisconf.TLSCAFile], node)
			assert.Equal(t, files, uploadsOf(t, again, node), "%s: the same files on every run", node)
			require.Contains(t, files[redisconf.TLSKeyFile], "PRIVATE KEY", node)
			block, _ := pem.Decode([]byte(files[redisconf.TLSCertFile]))
			require.NotNil(t, block, node)
			cert, err := x509.ParseCertificate(block.Bytes)
			require.NoError(t, err, node)
			_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: hostAddr[host], KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			assert.NoError(t, err, "%s: valid for %s", node, hostAddr[host])
			for other, addr := range hostAddr {
				if other != host {
					_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: addr})
					assert.Error(t, err, "%s: not valid for %s", node, other)
				}
			}
		}
	}
	for _, res := range r.Resources {
		for k, v := range res.Inputs {
			if !v.ContainsSecrets() {
				assert.NotContains(t, fmt.Sprint(v), "PRIVATE KEY", "%s.%s: a key outside a secret", res.Name, k)
			}
		}
	}
}

// TestMultiHostTLSOff: topology.tls false publishes the plain ports and uploads no TLS files.
func TestMultiHostTLSOff(t *testing.T) {
	cfg := maps.Clone(threeHosts.Config)
	cfg["topology"] = `{"mode":"sentinel","tls":false}`
	r := run(t, "dev", declared.Options{Config: cfg})
	for i := 0; i <= 2; i++ {
		node := fmt.Sprintf("broker-redis-%d", i)
		assert.Equal(t, float64(6379), resOf(t, r, node).Inputs["ports"].ArrayValue()[0].ObjectValue()["external"].NumberValue(), node)
		files := uploadsOf(t, r, node)
		assert.NotContains(t, files, redisconf.TLSKeyFile, node)
		assert.NotContains(t, files[redisconf.ConfigFile], "tls-port", node)
		if i > 0 {
			assert.Contains(t, files[redisconf.ConfigFile], "\nreplicaof 10.0.0.11 6379\n", node)
		}
		sentinel := fmt.Sprintf("broker-sentinel-%d", i+1)
		assert.Equal(t, float64(redisconf.SentinelPort), resOf(t, r, sentinel).Inputs["ports"].ArrayValue()[0].ObjectValue()["external"].NumberValue())
		assert.Contains(t, uploadsOf(t, r, sentinel)[redisconf.SentinelConfigFile], "\nsentinel monitor emailclient 10.0.0.11 6379 2\n")
	}
	env := envMap(t, resOf(t, r, "email-service-container-db-2-1").Inputs)
	assert.NotContains(t, env, "CELERY_REDIS_TLS_CA")
	assert.Contains(t, env["CELERY_BROKER_URL"], "@10.0.0.11:26379/0")
}

// TestMultiHostPortsNextToTheSentinels: only the published ports can collide on a host address (a
// data node's and a Sentinel's): 26378 and 26380 are accepted with TLS on and off, 26379 is refused
// (hosts_test's table).
func TestMultiHostPortsNextToTheSentinels(t *testing.T) {
	for _, tls := range []string{"true", "false"} {
		for _, port := range []int{26378, 26380} {
			cfg := maps.Clone(threeHosts.Config)
			cfg["topology"] = `{"mode":"sentinel","tls":` + tls + `}`
			cfg["redis"] = fmt.Sprintf(`{"port":%d}`, port)
			r := run(t, "dev", declared.Options{Config: cfg})
			published := resOf(t, r, "broker-redis-0").Inputs["ports"].ArrayValue()[0].ObjectValue()["external"].NumberValue()
			want := port
			if tls == "true" {
				want++
			}
			assert.Equal(t, float64(want), published, "tls %s, redis.port %d", tls, port)
		}
	}
}
