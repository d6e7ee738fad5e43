// Command redis-ops is the operator CLI for the Celery Redis broker: health,
// monitor, slowlog, stats, analyze, backup, list, verify, restore, and the
// long-running schedule (backups) and metrics (Prometheus) of the ops
// containers. Run "redis-ops help" for the commands and "redis-ops COMMAND
// --help" for flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	// The zone database, so that TZ=Europe/Berlin works for "schedule --cron"
	// in the scratch image, which has no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/emailclient/emailclient-infra/deployment/ops"
)

func main() {
	// redis-ops reports connection errors itself; go-redis' pool log is noise.
	redis.SetLogger(&logging.VoidLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
