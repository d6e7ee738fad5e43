package components

import (
	"path/filepath"
	"slices"
	"strconv"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// HostTarget is a host of a multi-host broker and the docker provider of its engine.
type HostTarget struct {
	Host
	Provider pulumi.ProviderResource
}

// Site is one Docker engine a broker runs on: its docker provider (nil on a single host: the stack's
// default provider), the broker network there, and the address the other hosts reach its published
// ports on ("" on a single host).
type Site struct {
	Provider pulumi.ProviderResource
	Network  pulumi.StringOutput
	Address  string
	image    pulumi.StringOutput // the Redis image built on this engine
}

// Options are the resource options of a resource on this engine: parent, and the site's provider.
func (s Site) Options(parent pulumi.ResourceOption) []pulumi.ResourceOption {
	if s.Provider == nil {
		return []pulumi.ResourceOption{parent}
	}
	return []pulumi.ResourceOption{parent, pulumi.Provider(s.Provider)}
}

// buildSites declares, on every engine of the broker, the broker network, and the Redis image where
// a data node or a Sentinel runs (without a registry each engine builds its own). A single-host
// broker has one site, "", on the stack's default provider, with the resource names it always had.
func buildSites(ctx *pulumi.Context, name string, args *RedisBrokerArgs, parent pulumi.ResourceOption) (map[string]Site, error) {
	targets := args.Hosts
	if len(targets) == 0 {
		targets = []HostTarget{{}}
	}
	c := args.Container
	sites := map[string]Site{}
	for _, h := range targets {
		site := Site{Provider: h.Provider, Address: h.Address}
		sfx := ""
		if h.Name != "" {
			sfx = "-" + h.Name
		}
		network, err := docker.NewNetwork(ctx, name+"-network"+sfx, &docker.NetworkArgs{
			Name:   pulumi.String(c.Network),
			Driver: pulumi.String("bridge"),
		}, append(site.Options(parent), pulumi.DeleteBeforeReplace(true))...)
		if err != nil {
			return nil, err
		}
		site.Network = network.Name
		sites[h.Name] = site
	}
	// The Redis image where a data node or a Sentinel runs.
	var placed []string
	for _, h := range targets {
		if h.Name == "" || slices.Contains(args.Topology.Placement.Data, h.Name) || slices.Contains(args.Topology.Placement.Sentinels, h.Name) {
			placed = append(placed, h.Name)
		}
	}
	images, err := imagesOn(ctx, imageBuild{resource: name + "-image", tag: c.ImageName, build: &docker.DockerBuildArgs{
		Context:    pulumi.String(args.BuildContext),
		Dockerfile: pulumi.String(filepath.Join(args.BuildContext, "Dockerfile")),
		Args: pulumi.StringMap{"BASE_IMAGE": pulumi.String(c.BaseImage),
			"REDIS_UID": pulumi.String(strconv.Itoa(c.UID)), "REDIS_GID": pulumi.String(strconv.Itoa(c.GID))},
		Platform: pulumi.String(c.Platform),
	}}, placed, sites, parent, args.Registry)
	if err != nil {
		return nil, err
	}
	for h, image := range images {
		site := sites[h]
		site.image = image
		sites[h] = site
	}
	return sites, nil
}

// siteOf is the site of data node i ("" on a single host).
func siteOf(args *RedisBrokerArgs, i int) string {
	if len(args.Hosts) == 0 {
		return ""
	}
	return args.Topology.Placement.Data[i]
}

// sentinelSite is the site of Sentinel j (from 1; "" on a single host).
func sentinelSite(args *RedisBrokerArgs, j int) string {
	if len(args.Hosts) == 0 {
		return ""
	}
	return args.Topology.Placement.Sentinels[j-1]
}
