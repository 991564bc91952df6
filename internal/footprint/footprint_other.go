//go:build !linux

package footprint

import (
	"context"
	"time"
)

// Trim does nothing off Linux.
func Trim() {}

// Keep does nothing off Linux but wait for ctx to end.
func Keep(ctx context.Context, _ time.Duration) { <-ctx.Done() }
