package helpers

import (
	"path/filepath"
	"strconv"
	"strings"
)

// shortNames names each task for its prefix: the base name of its program,
// followed by "#N" (its position, from 1) when several tasks share it.
func shortNames(tasks []Task) []string {
	count := map[string]int{}
	for _, t := range tasks {
		count[filepath.Base(t.Argv[0])]++
	}
	names := make([]string, len(tasks))
	for i, t := range tasks {
		names[i] = filepath.Base(t.Argv[0])
		if count[names[i]] > 1 {
			names[i] += "#" + strconv.Itoa(i+1)
		}
	}
	return names
}

// ExpandPrefix fills the {helper} placeholder of a --helper-prefix template
// with a task's (or a sidecar's) short name.
func ExpandPrefix(template, name string) string {
	return strings.ReplaceAll(template, "{helper}", name)
}
