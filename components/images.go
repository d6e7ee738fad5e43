package components

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/components/redisconf"
)

// Registry is where a multi-host stack's images are pushed once and pulled by digest on every host
// (the "registry" setting). Without it (Server empty, the default) every host builds its own.
type Registry struct {
	// Server is the registry's host[:port], e.g. registry.example.com or 10.0.0.5:5000; the hosts'
	// engines must trust it (TLS, or insecure-registries for a plain-HTTP one). Empty: no registry.
	Server string `json:"server"`
	// Repository is the path the images are pushed under: <server>/<repository>/<image tag>.
	// Defaults to emailclient.
	Repository string `json:"repository"`
	// Username authenticates pushes and pulls, with the registryPassword secret. Empty: anonymous.
	Username string `json:"username"`
}

// Enabled reports whether images go through the registry.
func (r Registry) Enabled() bool { return r.Server != "" }

var (
	registryServerRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$`)
	repositoryRe     = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*$`)
)

// Validate checks the registry setting (keys "registry.*"); hosts are the stack's hosts.
func (r Registry) Validate(hosts []Host, password string) error {
	if !r.Enabled() {
		return nil
	}
	v := &validator{prefix: "registry."}
	if len(hosts) == 0 {
		v.fail("server", r.Server, "a registry serves the hosts of a multi-host stack; accepted: empty on a single host, which builds its images itself")
	}
	v.match("server", r.Server, registryServerRe, "accepted: the registry's host[:port], e.g. registry.example.com or 10.0.0.5:5000, without a scheme")
	v.match("repository", r.Repository, repositoryRe, "accepted: a lower-case path such as emailclient or team/emailclient")
	if r.Username != "" && password == "" {
		v.errs = append(v.errs, &redisconf.FieldError{Key: "registryPassword", Value: "", Accepted: "required with registry.username; accepted: a secret, set with `pulumi config set --secret registryPassword <token>`"})
	}
	return errors.Join(v.errs...)
}

// RegistryAccess is the registry of a multi-host broker with its password.
type RegistryAccess struct {
	Registry
	// Password is the registry password (a secret); nil for anonymous access.
	Password pulumi.StringInput
}

// imageBuild is one image a stack builds: the resource name, its local tag and its build.
type imageBuild struct {
	resource, tag string
	build         *docker.DockerBuildArgs
}

// imagesOn declares the image on the sites named (host names; "" for a single host) and returns the
// image each site's containers run. Without a registry every site builds its own (resource
// <resource>-<site>; <resource> on a single host). With one, the first site builds it once and pushes
// it (resource <resource>), and every site pulls it by digest (<resource>-<site>): one image, the
// same bits on every host.
func imagesOn(ctx *pulumi.Context, img imageBuild, sites []string, all map[string]Site, parent pulumi.ResourceOption, reg *RegistryAccess) (map[string]pulumi.StringOutput, error) {
	out := map[string]pulumi.StringOutput{}
	resource := func(site string) string {
		if site == "" {
			return img.resource
		}
		return img.resource + "-" + site
	}
	if reg == nil || !reg.Enabled() {
		for _, s := range sites {
			built, err := docker.NewImage(ctx, resource(s), &docker.ImageArgs{ImageName: pulumi.String(img.tag), SkipPush: pulumi.Bool(true), Build: img.build},
				all[s].Options(parent)...)
			if err != nil {
				return nil, err
			}
			out[s] = built.RepoDigest
		}
		return out, nil
	}
	if len(sites) == 0 {
		return out, nil
	}
	var auth docker.RegistryPtrInput
	if reg.Username != "" {
		auth = &docker.RegistryArgs{Server: pulumi.String(reg.Server), Username: pulumi.String(reg.Username), Password: reg.Password}
	}
	pushed, err := docker.NewImage(ctx, img.resource, &docker.ImageArgs{
		ImageName: pulumi.String(fmt.Sprintf("%s/%s/%s", reg.Server, reg.Repository, img.tag)),
		Build:     img.build,
		Registry:  auth,
	}, all[sites[0]].Options(parent)...)
	if err != nil {
		return nil, err
	}
	for _, s := range sites {
		pulled, err := docker.NewRemoteImage(ctx, resource(s), &docker.RemoteImageArgs{Name: pushed.RepoDigest}, all[s].Options(parent)...)
		if err != nil {
			return nil, err
		}
		// The image ID, as the provider reads a container's image back (a digest reference would
		// show a replace on every preview).
		out[s] = pulled.ImageId
	}
	return out, nil
}
