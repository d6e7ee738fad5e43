// Command redis-config prints the exact redis.conf a stack's Redis container runs, rendered from the
// stack's settings (its Pulumi.<stack>.yaml over the profile's defaults), for operators to read.
//
//	go run ./deployment/cmd/redis-config --stack prod
//
// With --legacy-names PROFILE it prints instead, one "key value" per line, the settings that keep the
// Docker names of a stack deployed before names were scoped by stack (`make pin-names` writes them).
package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/emailclient/emailclient-infra/stacks"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redis-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stack := fs.String("stack", "dev", "the stack whose redis.conf to print (its Pulumi.<stack>.yaml)")
	legacy := fs.String("legacy-names", "", "print the settings that keep the names of a stack of this profile (dev or prod) deployed before names were scoped by stack")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *legacy != "" {
		if !slices.Contains(stacks.Profiles, *legacy) {
			fmt.Fprintf(stderr, "redis-config: --legacy-names %q: accepted: dev, prod\n", *legacy)
			return 2
		}
		names := stacks.LegacyNames(*legacy)
		for _, key := range slices.Sorted(maps.Keys(names)) {
			fmt.Fprintf(stdout, "%s %s\n", key, names[key])
		}
		return 0
	}
	root, err := stacks.FindRoot()
	if err == nil {
		var s stacks.Settings
		if s, err = stacks.LoadStackFile(root, *stack); err == nil {
			fmt.Fprint(stdout, s.Redis.Render())
			return 0
		}
	}
	fmt.Fprintf(stderr, "redis-config: %v\n", err)
	return 1
}
