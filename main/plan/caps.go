package plan

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hasCapability reports whether capability bit (unix.CAP_*) is in
// mainstay's effective set; when the kernel will not say, it assumes so
// and lets the start decide.
func hasCapability(bit int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true
	}
	return data[bit/32].Effective&(1<<(bit%32)) != 0
}

// mapped reports whether id is inside a range of the uid_map or gid_map
// file at path (lines "INSIDE OUTSIDE COUNT"); a file that cannot be read
// (no user namespaces) maps everything.
func mapped(path string, id uint32) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 == nil && err2 == nil && uint64(id) >= inside && uint64(id) < inside+count {
			return true
		}
	}
	return false
}
