package redistest

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key is one key as Snapshot reads it.
type Key struct {
	Type string
	// Value is the key's logical value in a form that is equal when the value is: a string as is,
	// the other types as fmt prints them (set members sorted; fmt sorts a hash's fields), so that
	// the order Redis happens to keep a set or hash in after loading a file does not count.
	Value string
	TTL   time.Duration // PTTL: -1 without an expiry
}

// Snapshot reads every key of c's database with its type, value and PTTL, to compare a dataset
// before and after a backup, restore or replacement.
func Snapshot(t testing.TB, c *redis.Client) map[string]Key {
	t.Helper()
	ctx := context.Background()
	out := map[string]Key{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ := c.Type(ctx, k).Val()
		var v any
		switch typ {
		case "string":
			v = c.Get(ctx, k).Val()
		case "hash":
			v = c.HGetAll(ctx, k).Val()
		case "list":
			v = c.LRange(ctx, k, 0, -1).Val()
		case "set":
			members := c.SMembers(ctx, k).Val()
			sort.Strings(members)
			v = members
		case "zset":
			v = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "stream":
			v = c.XRange(ctx, k, "-", "+").Val()
		default:
			t.Fatalf("redistest.Snapshot: key %q has type %q", k, typ)
		}
		out[k] = Key{Type: typ, Value: fmt.Sprint(v), TTL: c.PTTL(ctx, k).Val()}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// SameTTL reports whether a TTL read after an operation (got) is what want was before it, the
// operation having taken at most elapsed: both without an expiry, or got at most want and not more
// than elapsed below it.
func SameTTL(got, want, elapsed time.Duration) bool {
	if (want < 0) != (got < 0) {
		return false
	}
	return want < 0 || (got <= want && want-got <= elapsed)
}
