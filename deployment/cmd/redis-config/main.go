// Command redis-config prints the exact redis.conf a stack's Redis container runs, rendered from the
// stack's settings (its Pulumi.<stack>.yaml over the profile's defaults), for operators to read.
//
//	go run ./deployment/cmd/redis-config --stack prod
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/emailclient/emailclient-infra/stacks"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redis-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stack := fs.String("stack", "dev", "the stack whose redis.conf to print (its Pulumi.<stack>.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
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
