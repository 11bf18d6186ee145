package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mainstay-dev/mainstay/main/cron"
	"github.com/mainstay-dev/mainstay/readiness"
)

// Cron is one scheduled entry: a --cron 'SCHEDULE [KEY=VALUE ...] --
// COMMAND ARGS', or a line of a --crontab file. Each run is a child of
// its own, started when the schedule falls due.
type Cron struct {
	// Command is what each run runs: the words after the "--" of a
	// --cron; sh -c and the line's command for a crontab line.
	Command
	// Name is name=, or (once [NameCrons] ran) the base name of the
	// command's first word, with #N when several share it.
	Name  string
	named bool
	// Schedule is the schedule as given, its words separated by one
	// space; When is it parsed, for the scheduler.
	Schedule string
	When     cron.Schedule
	// Timeout bounds each run (timeout=; 0: none).
	Timeout time.Duration
	// Overlap is what happens when a run falls due while the previous
	// one still runs: [OverlapSkip] (the default) or [OverlapAllow].
	Overlap string
	// argv0 is the word the default name comes from: Argv[0], or for a
	// crontab line the first word of its command (not sh).
	argv0 string
	// crontab: a line of a --crontab (which cannot have name=).
	crontab bool
}

// The values of overlap=.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// cronKeys lists the options of a --cron, for error messages.
const cronKeys = "name, user, timeout, overlap, env, dir"

// defaultShell runs a crontab line's command unless the crontab sets
// SHELL=, as cron does.
const defaultShell = "/bin/sh"

// ParseCron reads one --cron value: 'SCHEDULE [KEY=VALUE ...] -- COMMAND
// ARGS', split into words as --helper's values are. The "--" is required;
// the words before it with "=" are options (any order), those without
// are the schedule (see [cron.Parse]). A key other than env= may be given
// once. Each error is one line naming the entry and the bad word, with
// the password of any URL in it hidden.
func ParseCron(line string) (*Cron, error) {
	c, err := parseCron(line)
	if err != nil {
		return nil, errors.New(readiness.Redact(err.Error()))
	}
	return c, nil
}

func parseCron(line string) (*Cron, error) {
	c := &Cron{Command: Command{Source: fmt.Sprintf("cron %q", readiness.Redact(line)), Line: line}, Overlap: OverlapSkip}
	words, err := readiness.SplitCommand(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Source, err)
	}
	sep := slices.Index(words, "--")
	if sep < 0 {
		return nil, fmt.Errorf("%s: no -- between the schedule and the command (want 'SCHEDULE [KEY=VALUE ...] -- COMMAND')", c.Source)
	}
	c.Argv = words[sep+1:]
	if len(c.Argv) == 0 {
		return nil, fmt.Errorf("%s: no command after --", c.Source)
	}
	if c.Argv[0] == "" {
		return nil, fmt.Errorf("%s: empty program name", c.Source)
	}
	c.argv0 = c.Argv[0]
	var schedule []string
	seen := map[string]bool{}
	for _, w := range words[:sep] {
		key, v, ok := strings.Cut(w, "=")
		if !ok {
			schedule = append(schedule, w)
			continue
		}
		if seen[key] && key != "env" {
			return nil, fmt.Errorf("%s: %q: %s= given more than once", c.Source, w, key)
		}
		seen[key] = true
		if err := c.setOption(key, v); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", c.Source, w, err)
		}
	}
	if len(schedule) == 0 {
		return nil, fmt.Errorf("%s: no schedule before -- (want 5 fields or %s)", c.Source, cron.Keywords)
	}
	if c.When, err = cron.Parse(strings.Join(schedule, " ")); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Source, err)
	}
	c.Schedule = c.When.String()
	return c, nil
}

func (c *Cron) setOption(key, v string) error {
	switch key {
	case "name":
		if err := checkName(v); err != nil {
			return err
		}
		c.Name, c.named = v, true
	case "timeout":
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errors.New("want a duration, as 30s or 5m (0: none)")
		}
		c.Timeout = d
	case "overlap":
		if v != OverlapSkip && v != OverlapAllow {
			return errors.New("want skip or allow")
		}
		c.Overlap = v
	case "user", "env", "dir":
		return c.setCommandOption(key, v)
	default:
		return fmt.Errorf("unknown option %q (want one of %s)", key, cronKeys)
	}
	return nil
}

// envLine matches a crontab's environment line, NAME=VALUE, with blanks
// allowed around the "=" as cron allows them.
var envLine = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$`)

// ParseCrontab reads a --crontab file: each line is a comment (# first),
// blank, NAME=VALUE, or a job: five fields or a keyword (@every takes its
// duration), then the command, run by sh -c (or by the crontab's SHELL=,
// as cron does) as written: "%" is literal, no stdin is fed. NAME=VALUE
// sets the environment of the jobs below it, as cron does (a value may be
// quoted to keep blanks). A blank path is refused. A line whose command starts with a user name
// (the /etc/cron.d form) is refused, pointing to user=. Each error names
// the file, the line number and the bad word, with the password of any URL
// in it hidden.
func ParseCrontab(path string) ([]*Cron, error) {
	crons, err := parseCrontab(path)
	if err != nil {
		return nil, errors.New(readiness.Redact(err.Error()))
	}
	return crons, nil
}

func parseCrontab(path string) ([]*Cron, error) {
	if strings.TrimSpace(path) == "" {
		return nil, fmt.Errorf("crontab %q: blank file name: give a crontab file, or leave the flag out", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("crontab %s: %w", path, err)
	}
	shell := defaultShell
	var env []string
	var crons []*Cron
	for i, raw := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("crontab %s:%d", path, i+1)
		line := strings.TrimLeft(strings.TrimSuffix(raw, "\r"), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if m := envLine.FindStringSubmatch(line); m != nil {
			key, v := m[1], unquote(strings.TrimRight(m[2], " \t"))
			switch key {
			case "CRON_TZ":
				return nil, fmt.Errorf("%s: %q: CRON_TZ is not supported: schedules are read in mainstay's time zone (TZ, or /etc/localtime)", where, line)
			case "SHELL":
				if v == "" {
					return nil, fmt.Errorf("%s: %q: empty SHELL", where, line)
				}
				shell = v
			}
			env = setEnv(env, key+"="+v)
			continue
		}
		c, err := crontabJob(line, shell, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		c.Source = readiness.Redact(where)
		crons = append(crons, c)
	}
	return crons, nil
}

// crontabJob reads a crontab's job line, run by shell with env above it.
func crontabJob(line, shell string, env []string) (*Cron, error) {
	if !strings.ContainsAny(line[:1], "0123456789*@") {
		// A schedule starts with a minute or a keyword.
		return nil, fmt.Errorf("%q: neither a job (5 fields or @keyword, then a command) nor NAME=VALUE", line)
	}
	n := 5
	if first, _ := cutWords(line, 1); first[0] == "@every" {
		n = 2
	} else if line[0] == '@' {
		n = 1
	}
	words, command := cutWords(line, n)
	when, err := cron.Parse(strings.Join(words, " "))
	if err != nil {
		return nil, err
	}
	if command == "" {
		return nil, fmt.Errorf("%q: no command after the schedule", line)
	}
	first, rest := cutWords(command, 1)
	if rest != "" && isUserField(first[0], env) {
		return nil, fmt.Errorf("%q: a user field (the /etc/cron.d form), which a crontab here does not have: its jobs run as --user (or mainstay's user); for another user, give the job as --cron '%s user=%s -- COMMAND'", first[0], when, first[0])
	}
	return &Cron{
		Command:  Command{Line: line, Argv: []string{shell, "-c", command}, Env: slices.Clone(env)},
		Schedule: when.String(),
		When:     when,
		Overlap:  OverlapSkip,
		argv0:    commandName(command),
		crontab:  true,
	}, nil
}

// cutWords cuts the first n blank-separated words off s, and returns
// them and the rest, its leading blanks removed.
func cutWords(s string, n int) (words []string, rest string) {
	rest = strings.TrimLeft(s, " \t")
	for len(words) < n && rest != "" {
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		words = append(words, rest[:end])
		rest = strings.TrimLeft(rest[end:], " \t")
	}
	return words, rest
}

// isUserField reports whether word, the first of a crontab job's command,
// is the user field of the /etc/cron.d form: the name of a user of the
// user database that is no program on the job's PATH (Debian has users
// named mail, backup and sync, which are commands too).
func isUserField(word string, env []string) bool {
	if _, err := user.Lookup(word); err != nil {
		return false
	}
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if fi, err := os.Stat(filepath.Join(dir, word)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return false
		}
	}
	return true
}

// commandName is the word a crontab line's default name comes from: the
// first word of its command that is not a NAME=VALUE assignment, without
// quotes.
func commandName(command string) string {
	for _, w := range strings.Fields(command) {
		w = strings.Trim(w, `"'`)
		if !envLine.MatchString(w) && w != "" {
			return w
		}
	}
	return "sh"
}

// unquote removes one pair of matching quotes around v, as cron does.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// setEnv sets kv in env, in place of an earlier value of its key.
func setEnv(env []string, kv string) []string {
	key, _, _ := strings.Cut(kv, "=")
	out := slices.DeleteFunc(slices.Clone(env), func(e string) bool { return strings.HasPrefix(e, key+"=") })
	return append(out, kv)
}

// NameCrons gives every entry without name= the base name of its
// command's first word (for a crontab line, of the line's command, not
// sh), with "#N" (its position among the entries, from 1) when several
// share it; it refuses "main", two entries with one name, and a name in
// taken (the sidecars'), with one line naming the entry.
func NameCrons(crons []*Cron, taken []string) error {
	argv0s, given := make([]string, len(crons)), make([]string, len(crons))
	for i, c := range crons {
		argv0s[i] = c.argv0
		if c.named {
			given[i] = c.Name
		}
	}
	seen := map[string]bool{}
	for i, name := range ShortNames(argv0s, given) {
		c := crons[i]
		c.Name = name
		hint := "give one name="
		if c.crontab {
			hint = "a crontab line is named after its command: rename the other with name=, or give this job as --cron with name="
		}
		switch {
		case name == "main":
			return fmt.Errorf("%s: name %q is main's; %s", c.Source, name, hint)
		case seen[name]:
			return fmt.Errorf("%s: name %q is taken by another cron entry; %s", c.Source, name, hint)
		case slices.Contains(taken, name):
			return fmt.Errorf("%s: name %q is taken by a sidecar; %s", c.Source, name, hint)
		}
		seen[name] = true
	}
	return nil
}

// CheckCrons names the entries after the sidecars' names ([NameCrons])
// and refuses a user= that mainstay cannot switch to
// ([CheckCronsCanSwitch]).
func CheckCrons(crons []*Cron, sidecars []*Sidecar) error {
	taken := make([]string, len(sidecars))
	for i, sc := range sidecars {
		taken[i] = sc.Name
	}
	if err := NameCrons(crons, taken); err != nil {
		return err
	}
	return CheckCronsCanSwitch(crons)
}

// CheckCronsCanSwitch refuses a cron entry's user= when mainstay cannot
// switch users.
func CheckCronsCanSwitch(l []*Cron) error {
	for _, c := range l {
		if c.User != nil {
			if err := c.User.CheckCanSwitch(); err != nil {
				return fmt.Errorf("%s: user=%s: %w", c.Source, c.User.Spec, err)
			}
		}
	}
	return nil
}
