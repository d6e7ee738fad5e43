package components

import (
	"fmt"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// OpsAccess is how an operations container reaches a data node: its address on the network, its data
// (a volume or a host path, mounted read-only at /data) and its runtime volume (ops.password, mounted
// read-only at /run/redis).
type OpsAccess struct {
	Site         Site // the engine of the data node
	Addr         string
	DataVolume   pulumi.StringOutput // empty when DataHostPath is set
	DataHostPath string
	RunVolume    pulumi.StringOutput
	// Sentinels are the Sentinels' host:port as the operations containers reach them, and MasterName
	// the primary's name there: set in the sentinel topology (without TLS between hosts, whose TLS
	// ports redis-ops does not speak), so that they follow the current primary instead of Addr.
	Sentinels  []string
	MasterName string
}

// nodeEnv is what every container of the broker shares.
type nodeEnv struct {
	args   *RedisBrokerArgs
	sites  map[string]Site
	parent pulumi.ResourceOption
	ops    *OpsAccess // set by the first data node
}

// resourceNames are the Pulumi names of a node's container, run volume and data volume.
type resourceNames struct{ resource, runVolume, dataVolume string }

// dataNodeResources are the resource names of the data node with suffix sfx of broker name.
func dataNodeResources(name, sfx string) resourceNames {
	return resourceNames{resource: name + "-redis" + sfx, runVolume: name + "-run" + sfx, dataVolume: name + "-data" + sfx}
}

// was is the alias option of a resource formerly named former ("": none, no former identity).
func was(former string) pulumi.ResourceOption {
	if former == "" {
		return pulumi.Aliases(nil)
	}
	return pulumi.Aliases([]pulumi.Alias{{Name: pulumi.String(former)}})
}

// node is one container of the broker: a data node or a Sentinel.
type node struct {
	resourceNames
	// former are the resource names of the same node in the other topology (the standalone broker and
	// the initial primary), as aliases; empty for the others.
	former           resourceNames
	container, alias string // container name and network alias
	volume, hostPath string // data volume name, or host path when set
	command          []string
	uploads          docker.ContainerUploadArrayOutput
	ports            docker.ContainerPortArray
	dependsOn        []pulumi.Resource
	stopGrace        int  // seconds from SIGTERM to SIGKILL
	ops              bool // the data node the operations containers use (node 0)
	site             Site // the engine it runs on
}

// node declares one hardened Redis container with its runtime volume (the uploads) and its data
// volume (or host path).
func (e *nodeEnv) node(ctx *pulumi.Context, n node) (*docker.Container, error) {
	c := e.args.Container
	opts := n.site.Options(e.parent)
	run, err := docker.NewVolume(ctx, n.runVolume, &docker.VolumeArgs{Name: pulumi.String(runVolumeName(n.container))},
		append(opts, pulumi.DeleteBeforeReplace(true), was(n.former.runVolume))...)
	if err != nil {
		return nil, err
	}
	first := n.ops
	if first {
		e.ops = &OpsAccess{Addr: fmt.Sprintf("%s:%d", n.alias, e.args.Config.Port), DataHostPath: n.hostPath, RunVolume: run.Name,
			DataVolume: pulumi.String("").ToStringOutput(), Site: n.site}
	}
	files, err := e.filesCarrier(ctx, n, run.Name)
	if err != nil {
		return nil, err
	}
	// Redis only reads the run volume: read-only here, written by the files carrier alone.
	volumes := docker.ContainerVolumeArray{nil, &docker.ContainerVolumeArgs{VolumeName: run.Name,
		ContainerPath: pulumi.String(redisconf.RunDir), ReadOnly: pulumi.Bool(true)}}
	if n.hostPath != "" {
		volumes[0] = &docker.ContainerVolumeArgs{HostPath: pulumi.String(n.hostPath), ContainerPath: pulumi.String(redisconf.DataDir)}
	} else {
		// The data volume outlives the stack: `pulumi destroy` must never take queued tasks with it.
		data, err := docker.NewVolume(ctx, n.dataVolume, &docker.VolumeArgs{Name: pulumi.String(n.volume)},
			append(opts, pulumi.RetainOnDelete(true), pulumi.DeleteBeforeReplace(true), pulumi.Protect(e.args.Protect), was(n.former.dataVolume))...)
		if err != nil {
			return nil, err
		}
		volumes[0] = &docker.ContainerVolumeArgs{VolumeName: data.Name, ContainerPath: pulumi.String(redisconf.DataDir)}
		if first {
			e.ops.DataVolume = data.Name
		}
	}
	return docker.NewContainer(ctx, n.resource, &docker.ContainerArgs{
		Name:    pulumi.String(n.container),
		Image:   n.site.image,
		Command: pulumi.ToStringArray(n.command),
		User:    pulumi.String(c.User()),
		Restart: pulumi.String(c.Restart),
		// Hardening: read-only root, writable /data and /run/redis volumes and a small /tmp, no
		// capabilities (Redis starts as its own user on volumes it owns), no privilege escalation.
		ReadOnly:     pulumi.Bool(true),
		Tmpfs:        pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,size=16m")},
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Healthcheck:  healthcheckArgs([]string{"CMD", HealthcheckCommand}, c.Healthcheck),
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(c.Log),
		Volumes:      volumes,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{&docker.ContainerNetworksAdvancedArgs{
			Name:    n.site.Network,
			Aliases: pulumi.StringArray{pulumi.String(n.alias)},
		}},
		Ports: n.ports,
		// A stop, replace or destroy sends SIGTERM and waits this long before SIGKILL (without it the
		// provider kills at once and Redis skips its last AOF write and final save).
		StopTimeout:         pulumi.Int(n.stopGrace),
		DestroyGraceSeconds: pulumi.Int(n.stopGrace),
		// The files in the run volume are the carrier's: a new carrier (new files) replaces Redis too.
		Labels:      docker.ContainerLabelArray{&docker.ContainerLabelArgs{Label: pulumi.String(FilesLabel), Value: files.ID()}},
		Wait:        pulumi.Bool(true),
		WaitTimeout: pulumi.Int(waitTimeoutSeconds),
		// Limits (0 = none): memory without swap, so that maxmemory plus fork headroom is the real bound.
		Memory:            pulumi.Int(megabytes(c.Memory)),
		MemorySwap:        pulumi.Int(megabytes(c.Memory)),
		MemoryReservation: pulumi.Int(megabytes(c.MemoryReservation)),
		Cpus:              optionalString(c.dockerCPUs()),
		CpuShares:         pulumi.Int(c.CPUShares),
	}, append(opts,
		pulumi.DependsOn(n.dependsOn),
		was(n.former.resource),
		pulumi.DeleteBeforeReplace(true), // fixed container name
		pulumi.ReplaceOnChanges([]string{"healthcheck"}))...)
}

// filesCarrier declares the container that places a node's runtime files (n.uploads) in its run
// volume: created, never started, with no network. The provider uploads files by copying a tar to
// "/" of the container, which Docker refuses for a read-only root filesystem even when the file
// lands in a volume; the carrier's root is writable, so Redis's can stay read-only. The carrier has no
// process, so nothing runs with that writable root. Uploads are replaced (ForceNew) when a file
// changes, and so is the carrier.
func (e *nodeEnv) filesCarrier(ctx *pulumi.Context, n node, runVolume pulumi.StringOutput) (*docker.Container, error) {
	former := "" // the carrier of the node's former identity, if any
	if n.former.resource != "" {
		former = FilesCarrier(n.former.resource)
	}
	return docker.NewContainer(ctx, FilesCarrier(n.resource), &docker.ContainerArgs{
		Name:        pulumi.String(FilesCarrier(n.container)),
		Image:       n.site.image,
		Command:     pulumi.ToStringArray(n.command),
		User:        pulumi.String(e.args.Container.User()),
		Start:       pulumi.Bool(false),
		MustRun:     pulumi.Bool(false),
		NetworkMode: pulumi.String("none"),
		// Declared although it never logs: the provider reads the engine's defaults back otherwise, and
		// a daemon with default log options would show a replace on every preview.
		LogDriver:    pulumi.String("json-file"),
		LogOpts:      logOpts(e.args.Container.Log),
		Capabilities: &docker.ContainerCapabilitiesArgs{Drops: pulumi.StringArray{pulumi.String("ALL")}},
		SecurityOpts: pulumi.StringArray{pulumi.String("no-new-privileges:true")},
		Volumes: docker.ContainerVolumeArray{&docker.ContainerVolumeArgs{VolumeName: runVolume,
			ContainerPath: pulumi.String(redisconf.RunDir)}},
		// The uploads hold passwords or their hashes: the whole array is secret.
		Uploads: pulumi.ToSecret(n.uploads).(docker.ContainerUploadArrayOutput),
	}, append(n.site.Options(e.parent),
		was(former),
		// New files land in the run volume only when their node is next: a node still running reads its
		// password files (healthcheck, ops tools) against the ACL it started with.
		pulumi.DependsOn(n.dependsOn),
		pulumi.DeleteBeforeReplace(true), // fixed container name
		pulumi.AdditionalSecretOutputs([]string{"uploads"}))...)
}

// RuntimeFiles are the files uploaded into /run/redis at container creation: the rendered
// redis.conf, the ACL file (SHA-256 hashes only), the ops user's password file (for the backup
// container, which mounts the volume) and the monitor user's (for the healthcheck). The directory is
// private to the redis user (mode 0700 in the image), so the files are world-readable in it.
func RuntimeFiles(cfg redisconf.Config, p redisconf.Passwords) []docker.ContainerUpload {
	return []docker.ContainerUpload{
		upload(redisconf.ConfigFile, cfg.Render()),
		upload(redisconf.ACLFile, redisconf.ACLFileContent(p)),
		upload(redisconf.OpsPasswordFile, p.Ops),
		upload(redisconf.MonitorPasswordFile, p.Monitor),
	}
}

// passwords are the ACL users' passwords from the resolved values of pulumi.All(celery, ops, monitor
// [, replica, sentinel user]).
func passwords(v []any) redisconf.Passwords {
	p := redisconf.Passwords{Celery: v[0].(string), Ops: v[1].(string), Monitor: v[2].(string)}
	if len(v) >= 7 {
		p.Replica, p.Sentinel, p.ReplicaPrevious, p.SentinelPrevious = v[3].(string), v[4].(string), v[5].(string), v[6].(string)
	}
	return p
}

// upload is one uploaded file, readable by the redis user in its private /run/redis.
func upload(path, content string) docker.ContainerUpload {
	return docker.ContainerUpload{File: path, Content: &content, Permissions: pulumi.StringRef("0444")}
}
