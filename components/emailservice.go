package components

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// EmailServiceType is the type token of EmailService.
const EmailServiceType = "emailclient:index:EmailService"

// EmailServiceArgs are the inputs of an EmailService.
type EmailServiceArgs struct {
	// Container shapes the container; Container.Image empty means: build the reference worker from
	// BuildContext.
	Container EmailServiceContainer
	// Celery are the Celery settings passed as environment variables.
	Celery Celery
	// BuildContext is the build context of the reference worker: deployment/, which holds its
	// directory and the emailclient_broker package it imports. Required when Container.Image is empty.
	BuildContext string
	// Dockerfile is the reference worker's Dockerfile (deployment/docker/email-worker/Dockerfile).
	// Required when Container.Image is empty.
	Dockerfile string
	// Platform is the build platform of the reference worker. Defaults to linux/amd64.
	Platform string
	// Broker is the RedisBroker whose URLs, network and health the service depends on. Required.
	Broker *RedisBroker
}

// EmailService is the email service's Celery worker container, wired to a RedisBroker.
type EmailService struct {
	pulumi.ResourceState

	// ContainerName is the container's name.
	ContainerName pulumi.StringOutput `pulumi:"containerName"`
	// Image is the image the container runs.
	Image pulumi.StringOutput `pulumi:"image"`
}

// CeleryEnv returns the Celery settings as the environment variables the email-service reads,
// without the two URLs (which are secrets; see NewEmailService). The synchronous-enqueue variables
// are set only when it is enabled, so that stacks without it keep their env (and their worker).
func (c Celery) CeleryEnv() map[string]string {
	env := map[string]string{
		"CELERY_TASK_SERIALIZER":            c.TaskSerializer,
		"CELERY_RESULT_SERIALIZER":          c.ResultSerializer,
		"CELERY_ACCEPT_CONTENT":             strings.Join(c.AcceptContent, ","),
		"CELERY_RESULT_EXPIRES":             strconv.Itoa(c.ResultExpires),
		"CELERY_TASK_TIME_LIMIT":            strconv.Itoa(c.TaskTimeLimit),
		"CELERY_TASK_SOFT_TIME_LIMIT":       strconv.Itoa(c.TaskSoftTimeLimit),
		"CELERY_BROKER_VISIBILITY_TIMEOUT":  strconv.Itoa(c.VisibilityTimeout),
		"CELERY_WORKER_CONCURRENCY":         strconv.Itoa(c.WorkerConcurrency),
		"CELERY_TASK_ACKS_LATE":             strconv.FormatBool(c.AcksLate),
		"CELERY_TASK_REJECT_ON_WORKER_LOST": strconv.FormatBool(c.RejectOnWorkerLost),
		"CELERY_WORKER_PREFETCH_MULTIPLIER": strconv.Itoa(c.PrefetchMultiplier),
		"CELERY_LOG_LEVEL":                  c.LogLevel,
	}
	if c.SyncEnqueue.Enabled {
		env["CELERY_SYNC_ENQUEUE_REPLICAS"] = strconv.Itoa(c.SyncEnqueue.Replicas)
		env["CELERY_SYNC_ENQUEUE_TIMEOUT_MS"] = strconv.Itoa(c.SyncEnqueue.TimeoutMilliseconds)
	}
	return env
}

// WorkerEnv returns the reference worker's own settings as environment variables (see
// deployment/docker/email-worker/emailworker/heartbeat.py); other images ignore them.
func (c EmailServiceContainer) WorkerEnv() map[string]string {
	return map[string]string{"EMAILWORKER_STALL_EXIT_SECONDS": strconv.Itoa(c.StallExitSeconds)}
}

// envList renders env as sorted KEY=value lines, so the declared order is stable.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// NewEmailService registers the email-service container (and the reference worker image when no
// image is given). It starts after the broker's Redis container is healthy, or alongside it when
// emailService.waitForRedis is false.
func NewEmailService(ctx *pulumi.Context, name string, args *EmailServiceArgs, opts ...pulumi.ResourceOption) (*EmailService, error) {
	if err := args.validate(); err != nil {
		return nil, fmt.Errorf("emailservice %q: %w", name, err)
	}
	s := &EmailService{}
	if err := ctx.RegisterComponentResource(EmailServiceType, name, s, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(s)
	b := args.Broker
	env := pulumi.All(b.BrokerURL, b.ResultBackendURL, b.SentinelPassword, b.TLSCA).ApplyT(func(v []any) []string {
		e := args.Celery.CeleryEnv()
		e["CELERY_BROKER_URL"], e["CELERY_RESULT_BACKEND"] = v[0].(string), v[1].(string)
		if b.Topology.Sentinel() {
			// kombu and the result backend find the primary through the Sentinels by this name, and
			// need the Sentinels' own password (sentinel_kwargs), or they report "No master found".
			e["CELERY_SENTINEL_MASTER_NAME"] = b.Topology.MasterName
			e["CELERY_SENTINEL_PASSWORD"] = v[2].(string)
		}
		if ca := v[3].(string); ca != "" {
			// Across hosts with topology.tls: the Sentinels and data nodes are reached over TLS, their
			// certificates verified against this CA.
			e["CELERY_REDIS_TLS_CA"] = ca
		}
		for k, v := range args.Container.WorkerEnv() {
			e[k] = v
		}
		return envList(e)
	}).(pulumi.StringArrayOutput)
	// One site and one worker on a single host, with the names it always had; across hosts, the
	// placement's workers, each host with its own image build.
	placement := map[string]int{"": 1}
	if _, single := b.Sites[""]; !single {
		placement = args.Container.Placement
		if len(placement) == 0 {
			placement = map[string]int{b.HostNames[0]: 1}
		}
	}
	hosts := make([]string, 0, len(placement))
	for h := range placement {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	first := true // the outputs name the first worker
	images := map[string]pulumi.StringOutput{}
	if args.Container.Image == "" {
		var err error
		if images, err = imagesOn(ctx, imageBuild{resource: name + "-image", tag: ReferenceWorkerImage(args.Container.Name), build: &docker.DockerBuildArgs{
			Context:    pulumi.String(args.BuildContext),
			Dockerfile: pulumi.String(args.Dockerfile),
			Args:       pulumi.StringMap{"BASE_IMAGE": pulumi.String(args.Container.BaseImage)},
			Platform:   pulumi.String(args.platform()),
		}}, hosts, b.Sites, parent, b.Registry); err != nil {
			return nil, fmt.Errorf("emailservice %q: %w", name, err)
		}
	}
	for _, h := range hosts {
		site := b.Sites[h]
		opts := pulumi.Composite(site.Options(parent)...)
		image, built := images[h]
		if !built {
			image = pulumi.String(args.Container.Image).ToStringOutput()
		}
		for k := 1; k <= placement[h]; k++ {
			resource, container := name+"-container", args.Container.Name
			if h != "" {
				resource, container = fmt.Sprintf("%s-container-%s-%d", name, h, k), fmt.Sprintf("%s-%s-%d", container, h, k)
			}
			worker, err := args.worker(ctx, resource, container, image, env, site.Network, opts)
			if err != nil {
				return nil, fmt.Errorf("emailservice %q: %w", name, err)
			}
			if first {
				s.ContainerName, s.Image, first = worker.Name, image, false
			}
		}
	}
	return s, ctx.RegisterResourceOutputs(s, pulumi.Map{"containerName": s.ContainerName, "image": s.Image})
}

// worker declares one worker container on network, on the engine of opts.
func (a *EmailServiceArgs) worker(ctx *pulumi.Context, resource, name string, image pulumi.StringOutput, env pulumi.StringArrayOutput,
	network pulumi.StringOutput, opts pulumi.ResourceOption) (*docker.Container, error) {
	c := a.Container
	var tmpfs pulumi.StringMap
	if c.ReadOnlyRoot {
		tmpfs = pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,size=64m")}
	}
	after := pulumi.DependsOn(nil)
	if c.WaitForRedis {
		// The data nodes are created with wait: true, i.e. healthy. In sentinel mode the worker starts
		// beside the Sentinels rather than after them: it finds the primary through the first one that
		// answers (retrying until then), and its own probe (a task taken from Redis) holds `pulumi up`
		// until it does.
		after = pulumi.DependsOn(a.Broker.DataNodes)
	}
	return docker.NewContainer(ctx, resource, &docker.ContainerArgs{
		Name:    pulumi.String(name),
		Image:   image,
		Restart: pulumi.String("unless-stopped"),
		// The URLs carry the password: the whole env array is secret.
		Envs: pulumi.ToSecret(env).(pulumi.StringArrayOutput),
		// Hardening: no capabilities (a Celery worker needs none), no privilege escalation, a read-only
		// root with a small /tmp, memory without swap and a process cap.
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		ReadOnly:     pulumi.Bool(c.ReadOnlyRoot),
		Tmpfs:        tmpfs,
		Memory:       pulumi.Int(megabytes(c.Memory)),
		MemorySwap:   pulumi.Int(megabytes(c.Memory)),
		Ulimits:      maxProcesses(c.MaxProcesses),
		// SIGTERM starts Celery's warm shutdown: running tasks finish within the grace.
		StopTimeout:         pulumi.Int(c.StopGraceSeconds),
		DestroyGraceSeconds: pulumi.Int(c.StopGraceSeconds),
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name: network,
		}},
		LogDriver: pulumi.String("json-file"),
		LogOpts:   logOpts(c.Log),
		// `pulumi up` goes on once the worker takes tasks from Redis (its probe passes).
		Healthcheck: healthcheckArgs(c.Healthcheck.Command, c.Healthcheck.Healthcheck),
		Wait:        pulumi.Bool(c.Healthcheck.Waits()),
		WaitTimeout: pulumi.Int(waitTimeoutSeconds),
	}, opts,
		// Otherwise (emailService.waitForRedis false) alongside Redis: the worker's connection retries
		// bridge the second or two until Redis answers, and its probe holds `pulumi up` until then.
		after,
		pulumi.DeleteBeforeReplace(true),
		// A changed probe never reaches a running container in place.
		pulumi.ReplaceOnChanges([]string{"healthcheck"}))
}

// maxProcesses is the nproc ulimit of n processes (none when n is 0).
func maxProcesses(n int) docker.ContainerUlimitArray {
	if n == 0 {
		return nil
	}
	return docker.ContainerUlimitArray{&docker.ContainerUlimitArgs{Name: pulumi.String("nproc"), Soft: pulumi.Int(n), Hard: pulumi.Int(n)}}
}

// platform is Platform or its default, linux/amd64.
func (a *EmailServiceArgs) platform() string {
	if a.Platform == "" {
		return "linux/amd64"
	}
	return a.Platform
}

func (a *EmailServiceArgs) validate() error {
	if a == nil {
		return errors.New("args are required")
	}
	var errs []error
	if a.Broker == nil || a.Broker.Container == nil {
		errs = append(errs, errors.New("Broker: required (a RedisBroker)"))
	} else {
		errs = append(errs, ValidateWorkerPlacement(a.Container.Placement, a.Broker.HostNames))
	}
	if a.Container.Image == "" && (a.BuildContext == "" || a.Dockerfile == "") {
		errs = append(errs, errors.New("BuildContext, Dockerfile: required when emailService.image is empty"))
	}
	if a.Broker != nil {
		errs = append(errs, a.Celery.CheckTopology(a.Broker.Topology, "celery."))
	}
	return errors.Join(append(errs, a.Container.Validate("emailService."), a.Celery.Validate("celery."))...)
}
