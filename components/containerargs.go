package components

import (
	"strconv"
	"time"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// StopGrace is the seconds Docker gives a Redis data node to shut down cleanly:
// container.stopGraceSeconds when set, else derived from redis.maxmemory: 20 s (Redis's own 10 s
// shutdown-timeout for lagging replicas, and margin) plus the final RDB save of a full dataset at a
// conservative 32 MB/s (512mb: 36 s, 1gb: 52 s).
func (c RedisContainer) StopGrace(cfg redisconf.Config) int {
	if c.StopGraceSeconds != 0 {
		return c.StopGraceSeconds
	}
	n, _ := redisconf.ParseMemory(cfg.MaxMemory)
	return 20 + int((n+32<<20-1)/(32<<20))
}

// healthcheckArgs declares the probe tests (Docker's form, e.g. ["CMD", program]) on schedule h;
// ["NONE"] declares no probe.
func healthcheckArgs(tests []string, h Healthcheck) *docker.ContainerHealthcheckArgs {
	if len(tests) == 1 && tests[0] == "NONE" {
		return &docker.ContainerHealthcheckArgs{Tests: pulumi.ToStringArray(tests)}
	}
	return &docker.ContainerHealthcheckArgs{
		Tests:       pulumi.ToStringArray(tests),
		Interval:    pulumi.String(canonicalDuration(h.Interval)),
		Timeout:     pulumi.String(canonicalDuration(h.Timeout)),
		Retries:     pulumi.Int(h.Retries),
		StartPeriod: pulumi.String(canonicalDuration(h.StartPeriod)),
		// Declared only when set: Docker before 25 drops it (see Healthcheck.StartInterval).
		StartInterval: optionalString(canonicalDuration(h.StartInterval)),
	}
}

// canonicalDuration is a validated Go duration as the provider reads it back from Docker ("60s" and
// "1m" as "1m0s"), so a second preview shows no change; "" stays "".
func canonicalDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return d.String()
}

func logOpts(l LogRotation) pulumi.StringMap {
	return pulumi.StringMap{"max-size": pulumi.String(l.MaxSize), "max-file": pulumi.String(strconv.Itoa(l.MaxFile))}
}

// ports publishes Redis on the loopback host address in dev; none when HostPort is 0 (prod).
func ports(port int, c RedisContainer) docker.ContainerPortArray {
	if c.HostPort == 0 {
		return nil
	}
	return docker.ContainerPortArray{&docker.ContainerPortArgs{
		Internal: pulumi.Int(port), External: pulumi.Int(c.HostPort), Ip: pulumi.String(c.HostIP), Protocol: pulumi.String("tcp"),
	}}
}

// publish publishes port on the host address addr, the same port number on both sides (a multi-host
// node: what the host announces is what the other hosts dial).
func publish(addr string, port int) docker.ContainerPortArray {
	return docker.ContainerPortArray{&docker.ContainerPortArgs{
		Internal: pulumi.Int(port), External: pulumi.Int(port), Ip: pulumi.String(addr), Protocol: pulumi.String("tcp"),
	}}
}

func optionalString(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.String(s)
}
