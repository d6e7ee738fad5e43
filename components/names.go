package components

import "fmt"

// DockerObject is one Docker or host object a stack names, with the setting its name comes from.
type DockerObject struct {
	// Kind is container, volume, network, image, host path or host port.
	Kind string
	// Name is the object's name (a host path, or ip:port for a host port).
	Name string
	// Key is the setting the name derives from (e.g. "container.name").
	Key string
	// Value is that setting's value.
	Value any
}

// Kinds of DockerObject.
const (
	KindContainer = "container"
	KindVolume    = "volume"
	KindNetwork   = "network"
	KindImage     = "image"
	KindHostPath  = "host path"
	KindHostPort  = "host port"
)

// nodeSuffixes are the suffixes of the data nodes' and Sentinels' names in a topology: "" for a
// standalone broker, "-0".."-N" and "-sentinel-1".."-sentinel-M" for a sentinel one.
func nodeSuffixes(t Topology) (data, sentinels []string) {
	if !t.Sentinel() {
		return []string{""}, nil
	}
	for i := 0; i <= t.Replicas; i++ {
		data = append(data, fmt.Sprintf("-%d", i))
	}
	for j := 1; j <= t.Sentinels; j++ {
		sentinels = append(sentinels, fmt.Sprintf("-sentinel-%d", j))
	}
	return data, sentinels
}

// runVolumeName is the run volume of the container named container.
func runVolumeName(container string) string { return container + "-run" }

// FilesCarrier is the name of the files carrier of the Redis container named node: its Docker name,
// and its resource name from the Redis container's resource name.
func FilesCarrier(node string) string { return node + "-files" }

// opsContainerName is the operations container of role (backup, metrics).
func opsContainerName(c RedisContainer, role string) string { return c.Name + "-" + role }

// opsImageName is the local tag of the redis-ops image.
func opsImageName(c RedisContainer) string { return "emailclient-redis-ops:" + c.Name }

// ReferenceWorkerImage is the local tag of the reference email-service worker built when
// emailService.image is empty, for the email-service container named name.
func ReferenceWorkerImage(name string) string { return "emailclient-email-worker:" + name }

// BrokerObjects are the Docker and host objects a broker (and its operations containers when o is
// not nil) creates or uses, each with the "container.", "operations." or "topology." setting it comes
// from: what two settings must not share.
func BrokerObjects(c RedisContainer, t Topology, o *Operations) []DockerObject {
	out := []DockerObject{
		{KindNetwork, c.Network, "container.network", c.Network},
		{KindImage, c.ImageName, "container.imageName", c.ImageName},
	}
	data, sentinels := nodeSuffixes(t)
	for i, sfx := range append(append([]string(nil), data...), sentinels...) {
		name := c.Name + sfx
		out = append(out,
			DockerObject{KindContainer, name, "container.name", c.Name},
			DockerObject{KindContainer, FilesCarrier(name), "container.name", c.Name},
			DockerObject{KindVolume, runVolumeName(name), "container.name", c.Name})
		if i < len(data) && c.DataHostPath != "" {
			out = append(out, DockerObject{KindHostPath, nodeHostPath(c.DataHostPath, t, i), "container.dataHostPath", c.DataHostPath})
		} else if i < len(data) {
			out = append(out, DockerObject{KindVolume, dataVolumeName(c.Volume, sfx, i), "container.volume", c.Volume})
		} else {
			out = append(out, DockerObject{KindVolume, c.Volume + sfx, "container.volume", c.Volume})
		}
	}
	if c.HostPort != 0 {
		out = append(out, DockerObject{KindHostPort, fmt.Sprintf("%s:%d", c.HostIP, c.HostPort), "container.hostPort", c.HostPort})
	}
	if o == nil {
		return out
	}
	out = append(out, DockerObject{KindImage, opsImageName(c), "container.name", c.Name})
	if o.Backup.Enabled {
		out = append(out, DockerObject{KindContainer, opsContainerName(c, "backup"), "container.name", c.Name})
		if o.Backup.HostPath != "" {
			out = append(out, DockerObject{KindHostPath, o.Backup.HostPath, "operations.backup.hostPath", o.Backup.HostPath})
		} else {
			out = append(out, DockerObject{KindVolume, o.Backup.Volume, "operations.backup.volume", o.Backup.Volume})
		}
	}
	if o.Metrics.Enabled {
		out = append(out, DockerObject{KindContainer, opsContainerName(c, "metrics"), "container.name", c.Name})
		if o.Metrics.HostPort != 0 {
			out = append(out, DockerObject{KindHostPort, fmt.Sprintf("%s:%d", o.Metrics.HostIP, o.Metrics.HostPort), "operations.metrics.hostPort", o.Metrics.HostPort})
		}
	}
	return out
}

// dataVolumeName is the data volume of data node i (name suffix sfx): the initial primary (node 0)
// keeps the standalone broker's volume itself, so that switching the topology keeps the data; the
// replicas have volume<sfx>.
func dataVolumeName(volume, sfx string, i int) string {
	if i == 0 {
		return volume
	}
	return volume + sfx
}

// nodeHostPath is the data host path of data node i: DataHostPath itself for a standalone broker,
// DataHostPath/<i> in a sentinel topology.
func nodeHostPath(dataHostPath string, t Topology, i int) string {
	if !t.Sentinel() {
		return dataHostPath
	}
	return fmt.Sprintf("%s/%d", dataHostPath, i)
}

// Objects are the Docker objects of the email-service ("emailService." settings).
func (e EmailServiceContainer) Objects() []DockerObject {
	if !e.Enabled {
		return nil
	}
	out := []DockerObject{{KindContainer, e.Name, "emailService.name", e.Name}}
	if e.Image == "" {
		out = append(out, DockerObject{KindImage, ReferenceWorkerImage(e.Name), "emailService.name", e.Name})
	}
	return out
}
