package components

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReplacementOrderPutsTheCurrentPrimaryLast(t *testing.T) {
	top := DefaultTopology()
	top.Mode, top.Replicas = "sentinel", 3
	assert.Equal(t, []int{1, 2, 3, 0}, replacementOrder(top, ""), "first deploy: redis-0 is the primary")
	assert.Equal(t, []int{1, 2, 3, 0}, replacementOrder(top, "redis-0"))
	assert.Equal(t, []int{0, 1, 3, 2}, replacementOrder(top, "redis-2"), "after a failover to redis-2")
	assert.Equal(t, []int{1, 2, 3, 0}, replacementOrder(top, "sentinel-1"), "an answer that is no data node: the initial order")
}
