package control

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteTable writes st as "mainstay status" prints it: a line with the
// phase and whether ready, then a table, one child a row, in the style of
// supervisorctl's:
//
//	phase: ready, ready: yes
//	NAME   KIND     STATE      PID  UPTIME  RESTARTS  LAST EXIT
//	main   main     running    7    1h02m   0         -
//	cache  sidecar  backoff    -    -       2         exit status 1, 3s ago; restart in 1s
//	tidy   cron     scheduled  -    -       0         exit status 0, 4m ago; next run in 56s
//
// Every column but the last is one word, so awk '{print $3}' reads the
// states. now is the time ages are counted to.
func WriteTable(w io.Writer, st *Status, now time.Time) error {
	ready := "no"
	if st.Ready {
		ready = "yes"
	}
	if _, err := fmt.Fprintf(w, "phase: %s, ready: %s\n", st.Phase, ready); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST EXIT")
	for _, c := range st.Children {
		pid, uptime := "-", "-"
		if c.PID != 0 {
			pid = strconv.Itoa(c.PID)
		}
		if c.Uptime != nil {
			uptime = short(time.Duration(*c.Uptime) * time.Second)
		}
		last := "-"
		if c.LastExit != nil {
			last = fmt.Sprintf("%s, %s ago", c.LastExit.Status, short(now.Sub(c.LastExit.At)))
		}
		if c.NextRestart != nil {
			if d := c.NextRestart.Sub(now); d > 0 {
				last += "; restart in " + short(d)
			} else {
				last += "; restart due"
			}
		}
		if c.NextDue != nil {
			next := "next run due"
			if d := c.NextDue.Sub(now); d > 0 {
				next = "next run in " + short(d)
			}
			if last == "-" {
				last = next
			} else {
				last += "; " + next
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Name, c.Kind, c.State, pid, uptime, c.Restarts, last)
	}
	return tw.Flush()
}

// short writes d in two units at most: 42s, 5m03s, 3h05m, 2d03h; under a
// second, in milliseconds (0s for none).
func short(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// WriteJSON writes st as "mainstay status --json" prints it: the
// [Status] object, indented, and a newline.
func WriteJSON(w io.Writer, st *Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}
