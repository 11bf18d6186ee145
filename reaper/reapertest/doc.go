// Package reapertest holds helpers for tests of packages that start children
// through the reaper: starting the one reaper of a test binary, collecting
// the JSON log records a package writes, and watching and cleaning up the
// processes that a test's children start.
//
// It is for _test.go files only: no non-test code may import it.
//
// # Use
//
// [reaper.Start] may be called once per process, so the tests of a package
// share the reaper that [Runner] starts on its first call:
//
//	var runner = reapertest.Runner()
//
// A test that starts a process through a shell ("sleep 100 & echo $! > file")
// reads its PID with [ReadPID], makes sure it does not outlive the test with
// [KillOnCleanup] and waits for it to die with [WaitGone]. [ProcStart] tells
// a process from a later one that reuses its PID.
//
// These helpers only read /proc and send signals: they never wait for a
// child, which is the reaper's job alone.
package reapertest
