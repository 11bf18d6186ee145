package helpers_test

import "github.com/mainstay-dev/mainstay/reaper/reapertest"

// runner is the one reaper of this test binary: reaper.Start may be called
// once per process, and helpers must start through it.
var runner = reapertest.Runner()
