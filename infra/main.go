// Command infra is the Pulumi program of emailclient-infra (Pulumi.yaml: main: infra/).
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/emailclient/emailclient-infra/stacks"
)

func main() {
	pulumi.Run(stacks.Program)
}
