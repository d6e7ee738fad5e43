package stacks

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// reservedNetworks are the networks Docker creates itself; a stack must not create (or later delete)
// one of them.
var reservedNetworks = []string{"bridge", "host", "none", "default", "ingress", "docker_gwbridge"}

// systemPaths are host directories no broker may own: the system's own, Docker's state, and
// directories the host empties at boot (queued tasks there are gone after a reboot).
var systemPaths = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin",
	"/sys", "/tmp", "/usr", "/var/lib/docker", "/var/lib/containerd", "/var/run", "/var/tmp"}

// collisions checks the settings that name the same Docker or host object, the objects Docker or the
// host reserves, and the settings that together make the broker lose queued tasks silently. Each
// error names both keys, their values and what is accepted.
func (s Settings) collisions() []error {
	var errs []error
	conflict := func(a, b components.DockerObject, why, accepted string) {
		errs = append(errs, fmt.Errorf("%s: %v and %s: %v name the same %s %q (%s); accepted: %s",
			a.Key, quote(a.Value), b.Key, quote(b.Value), a.Kind, a.Name, why, accepted))
	}
	var ops *components.Operations
	if s.Operations.Enabled() {
		ops = &s.Operations
	}
	objects := append(components.BrokerObjects(s.Container, s.Topology, ops), s.EmailService.Objects()...)
	for i, a := range objects {
		for _, b := range objects[i+1:] {
			if a.Key == b.Key {
				continue // names derived from one setting are distinct by construction
			}
			switch {
			case a.Kind == components.KindHostPath && b.Kind == components.KindHostPath && nested(a.Name, b.Name):
				conflict(a, b, "one holds the other: backups would be written and pruned inside Redis's data, or the reverse", "two directories neither of which contains the other")
			case a.Kind != b.Kind || a.Name != b.Name:
			case a.Kind == components.KindHostPort:
				conflict(a, b, "two containers cannot publish the same host port", "different ports, or different loopback addresses")
			case a.Kind == components.KindVolume:
				conflict(a, b, "two containers would write the same files", "different volume names")
			default:
				conflict(a, b, "one would replace or run as the other", "different names")
			}
		}
	}
	reported := map[string]bool{}
	for _, o := range objects {
		switch {
		case o.Kind == components.KindNetwork && slices.Contains(reservedNetworks, o.Name):
			errs = append(errs, &redisconf.FieldError{Key: o.Key, Value: o.Name,
				Accepted: "Docker reserves it; accepted: a network of the stack's own, such as emailclient-net (not " + strings.Join(reservedNetworks, ", ") + ")"})
		case o.Kind == components.KindHostPath && !reported[o.Key]:
			if sys := systemPath(o.Name); sys != "" {
				reported[o.Key] = true
				errs = append(errs, &redisconf.FieldError{Key: o.Key, Value: o.Value, Accepted: fmt.Sprintf(
					"%s belongs to the host or Docker, or is emptied at boot; accepted: a directory of its own such as /srv/emailclient/redis", sys)})
			}
		}
	}
	if c := s.Container; c.BaseImage == c.ImageName {
		errs = append(errs, fmt.Errorf("container.baseImage: %q and container.imageName: %q are the same image: each build would start FROM the previous one; accepted: different images", c.BaseImage, c.ImageName))
	}
	if e := s.EmailService; e.Enabled && e.Image != "" && e.Image == s.Container.ImageName {
		errs = append(errs, fmt.Errorf("emailService.image: %q and container.imageName: %q are the same image: the email-service would run Redis; accepted: the email-service's own image", e.Image, s.Container.ImageName))
	}
	if e := s.EmailService; e.Enabled && e.Image == "" && e.BaseImage == components.ReferenceWorkerImage(e.Name) {
		errs = append(errs, fmt.Errorf("emailService.baseImage: %q is the tag the reference worker is built as (emailService.image empty): each build would start FROM the previous one; accepted: another image", e.BaseImage))
	}
	if r := s.Redis; !r.AppendOnly && !r.AcknowledgeTaskLoss {
		what := "snapshots only: a crash loses every task queued since the last one (up to " + lastSnapshotWindow(r) + ")"
		if len(r.Save) == 0 {
			what = "nothing is persisted: every restart loses every queued task"
		}
		errs = append(errs, fmt.Errorf("redis.appendonly: false with redis.save: %s: %s; accepted: appendonly true (the default), or redis.acknowledgeTaskLoss: true to accept the risk", saveString(r.Save), what))
	}
	return errs
}

// nested reports whether one cleaned absolute path is the other or inside it.
func nested(a, b string) bool {
	a, b = path.Clean(a), path.Clean(b)
	return a == b || strings.HasPrefix(b, strings.TrimSuffix(a, "/")+"/") || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/")
}

// systemPath is the system path p is, or is inside ("/" only when p is "/"); "" when none.
func systemPath(p string) string {
	p = path.Clean(p)
	if p == "/" {
		return "/"
	}
	for _, sys := range systemPaths {
		if p == sys || strings.HasPrefix(p, sys+"/") {
			return sys
		}
	}
	return ""
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func saveString(points []redisconf.SavePoint) string {
	if len(points) == 0 {
		return "[] (no snapshots)"
	}
	parts := make([]string, len(points))
	for i, p := range points {
		parts[i] = fmt.Sprintf("%d s/%d changes", p.Seconds, p.Changes)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// lastSnapshotWindow is the longest interval of the save points, the most a crash can lose.
func lastSnapshotWindow(r redisconf.Config) string {
	longest := 0
	for _, p := range r.Save {
		longest = max(longest, p.Seconds)
	}
	return fmt.Sprintf("%d s", longest)
}
