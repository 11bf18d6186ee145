package readiness_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/readiness"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want readiness.Probe // compared on its exported fields and String
	}{
		{"tcp port only means localhost", "tcp:5432", readiness.TCP{Addr: "localhost:5432"}},
		{"tcp host and port", "tcp:db:5432", readiness.TCP{Addr: "db:5432"}},
		{"tcp ipv6 literal", "tcp:[::1]:5432", readiness.TCP{Addr: "[::1]:5432"}},
		{"tcp lowest port", "tcp:1", readiness.TCP{Addr: "localhost:1"}},
		{"tcp highest port", "tcp:65535", readiness.TCP{Addr: "localhost:65535"}},
		{"file", "file:/x", readiness.File{Path: "/x"}},
		{"file path with colon and spaces", "file:/run/a b:c", readiness.File{Path: "/run/a b:c"}},
		{"exec plain words", "exec:pg_isready -h localhost", readiness.Exec{Argv: []string{"pg_isready", "-h", "localhost"}}},
		{"exec quotes", `exec:sh -c 'test -e "/tmp/a b"' "x y" z\ w`, readiness.Exec{Argv: []string{"sh", "-c", `test -e "/tmp/a b"`, "x y", "z w"}}},
		{"exec quoted operator is an argument", `exec:sh -c "a && b"`, readiness.Exec{Argv: []string{"sh", "-c", "a && b"}}},
		{"exec no variable expansion", `exec:echo $HOME`, readiness.Exec{Argv: []string{"echo", "$HOME"}}},
		{"http", "http://localhost:8080/healthz?full=1", readiness.HTTP{URL: "http://localhost:8080/healthz?full=1"}},
		{"https", "https://db/ready", readiness.HTTP{URL: "https://db/ready"}},
		{"https any certificate", "https+insecure://localhost:8443/", readiness.HTTP{URL: "https://localhost:8443/", SkipVerify: true}},
		{"tcp url form", "tcp://127.0.0.1:6379", readiness.TCP{Addr: "127.0.0.1:6379"}},
		{"tcp url form with a name and a slash", "tcp://db:5432/", readiness.TCP{Addr: "db:5432"}},
		{"tcp url form ipv6", "tcp://[::1]:5432", readiness.TCP{Addr: "[::1]:5432"}},
		{"tcp ipv6 with zone", "tcp:[fe80::1%eth0]:80", readiness.TCP{Addr: "[fe80::1%eth0]:80"}},
		{"tcp name that may resolve later", "tcp:not-yet-in-dns.example:80", readiness.TCP{Addr: "not-yet-in-dns.example:80"}},
		{"tcp name with underscore", "tcp:my_db:5432", readiness.TCP{Addr: "my_db:5432"}},
		{"tcp fully qualified name", "tcp:db.example.:5432", readiness.TCP{Addr: "db.example.:5432"}},
		{"unix socket", "unix:/run/app.sock", readiness.Unix{Path: "/run/app.sock"}},
		{"unix url form", "unix:///var/run/docker.sock", readiness.Unix{Path: "/var/run/docker.sock"}},
		{"unix relative path", "unix:app.sock", readiness.Unix{Path: "app.sock"}},
		{"unix abstract", "unix:@app", readiness.Unix{Path: "@app"}},
		{"unix longest path", "unix:/" + strings.Repeat("s", 106), readiness.Unix{Path: "/" + strings.Repeat("s", 106)}},
		{"http ipv6 with zone", "http://[fe80::1%25eth0]:8080/", readiness.HTTP{URL: "http://[fe80::1%25eth0]:8080/"}},
		{"http with user", "http://u:p@localhost/", readiness.HTTP{URL: "http://u:xxxxx@localhost/"}},
		{"http with user name only", "http://u@localhost/", readiness.HTTP{URL: "http://u@localhost/"}},
		{"notify", "notify", &readiness.Notify{}},
		{"log regex with colons and spaces", "log:ready to accept: (connections|clients)$", &readiness.Log{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readiness.Parse(tt.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			shown := tt.spec
			if tt.spec == "http://u:p@localhost/" {
				shown = "http://u:xxxxx@localhost/" // no password shows
			}
			if got.String() != shown {
				t.Errorf("String() = %q, want %q", got.String(), shown)
			}
			if reflect.TypeOf(got) != reflect.TypeOf(tt.want) {
				t.Fatalf("Parse(%q) = %T, want %T", tt.spec, got, tt.want)
			}
			switch want := tt.want.(type) {
			case readiness.TCP:
				if a := got.(readiness.TCP).Addr; a != want.Addr {
					t.Errorf("Addr = %q, want %q", a, want.Addr)
				}
			case readiness.File:
				if p := got.(readiness.File).Path; p != want.Path {
					t.Errorf("Path = %q, want %q", p, want.Path)
				}
			case readiness.Exec:
				if a := got.(readiness.Exec).Argv; !reflect.DeepEqual(a, want.Argv) {
					t.Errorf("Argv = %q, want %q", a, want.Argv)
				}
			case readiness.HTTP:
				if h := got.(readiness.HTTP); h.URL != want.URL || h.SkipVerify != want.SkipVerify {
					t.Errorf("URL, SkipVerify = %q, %v, want %q, %v", h.URL, h.SkipVerify, want.URL, want.SkipVerify)
				}
			case readiness.Unix:
				if p := got.(readiness.Unix).Path; p != want.Path {
					t.Errorf("Path = %q, want %q", p, want.Path)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string // fragments the error must contain
	}{
		{"tcp without port", "tcp:", []string{`probe "tcp:"`, `port ""`, "from 1 to 65535"}},
		{"tcp port too big", "tcp:99999", []string{`probe "tcp:99999"`, `port "99999"`, "from 1 to 65535"}},
		{"tcp port zero", "tcp:0", []string{`probe "tcp:0"`, `port "0"`, "from 1 to 65535"}},
		{"tcp port negative", "tcp:-1", []string{`probe "tcp:-1"`, `port "-1"`}},
		{"tcp port not a number", "tcp:abc", []string{`probe "tcp:abc"`, `port "abc"`, "not a number"}},
		{"tcp named port", "tcp:db:http", []string{`probe "tcp:db:http"`, `port "http"`}},
		{"tcp empty host", "tcp::80", []string{`probe "tcp::80"`, "empty host"}},
		{"tcp host without port", "tcp:db:", []string{`probe "tcp:db:"`, `port ""`}},
		{"tcp too many colons", "tcp:::1:80", []string{`probe "tcp:::1:80"`, "want tcp:PORT or tcp:HOST:PORT"}},
		{"tcp ipv6 without port", "tcp:[::1]", []string{`probe "tcp:[::1]"`, "want tcp:PORT or tcp:HOST:PORT"}},
		{"tcp url without host", "tcp://6379", []string{`probe "tcp://6379"`, "want tcp://HOST:PORT"}},
		{"tcp url empty host", "tcp://:6379", []string{`probe "tcp://:6379"`, "empty host"}},
		{"tcp url with path", "tcp://db:5432/x", []string{`probe "tcp://db:5432/x"`, `port "5432/x"`}},
		{"tcp host with a slash", "tcp://127.0.0.1/:80", []string{`host "127.0.0.1/"`, "neither an IP address nor a valid host name"}},
		{"tcp host with slashes", "tcp:a/b:80", []string{`probe "tcp:a/b:80"`, `host "a/b"`}},
		{"tcp host with a space", "tcp:a b:80", []string{`host "a b"`}},
		{"tcp host with an empty label", "tcp:a..b:80", []string{`host "a..b"`}},
		{"tcp host label starts with a dash", "tcp:-a:80", []string{`host "-a"`}},
		{"tcp host label too long", "tcp:" + strings.Repeat("a", 64) + ":80", []string{"neither an IP address nor a valid host name"}},
		{"tcp host too long", "tcp:" + strings.Repeat("a.", 127) + "aa:80", []string{"neither an IP address nor a valid host name"}},
		{"tcp host with NUL", "tcp:a\x00b:80", []string{"neither an IP address nor a valid host name"}},
		{"file without path", "file:", []string{`probe "file:"`, "needs a path"}},
		{"file with NUL", "file:/a\x00b", []string{"NUL byte"}},
		{"exec without command", "exec:", []string{`probe "exec:"`, "empty"}},
		{"exec blank command", "exec:   ", []string{`probe "exec:   "`, "empty"}},
		{"exec unbalanced quote", "exec:'unbalanced", []string{`probe "exec:'unbalanced"`, "unbalanced quotes"}},
		{"exec trailing backslash", `exec:a\`, []string{`probe "exec:a\\"`, "trailing backslash"}},
		{"exec and-and", "exec:a && b", []string{`probe "exec:a && b"`, "shell operator", `at "&& b"`}},
		{"exec pipe", "exec:a | b", []string{"shell operator", `at "| b"`}},
		{"exec semicolon", "exec:a; b", []string{"shell operator", `at "; b"`}},
		{"exec redirect", "exec:a > /tmp/f", []string{"shell operator", `at "> /tmp/f"`}},
		{"exec fd redirect", "exec:a 2>/dev/null", []string{"shell operator", `at "2>/dev/null"`}},
		{"exec background", "exec:a &", []string{"shell operator", `at "&"`}},
		{"exec subshell", "exec:a (b)", []string{`probe "exec:a (b)"`}},
		{"http without host", "http://", []string{`probe "http://"`, "HOST"}},
		{"http with port only", "http://:8080/", []string{`probe "http://:8080/"`, "HOST"}},
		{"http port too big", "http://localhost:99999/", []string{`probe "http://localhost:99999/"`, `port "99999"`}},
		{"https+insecure without host", "https+insecure:///x", []string{`probe "https+insecure:///x"`, "HOST"}},
		{"unix without path", "unix:", []string{`probe "unix:"`, "socket path"}},
		{"unix url without path", "unix://", []string{`probe "unix://"`, "want unix:///ABSOLUTE/PATH"}},
		{"unix url relative", "unix://app.sock", []string{`probe "unix://app.sock"`, "want unix:///ABSOLUTE/PATH"}},
		{"unix path too long", "unix:/" + strings.Repeat("s", 107), []string{"108 bytes, longer than the 107"}},
		{"unix with NUL", "unix:/a\x00b", []string{"NUL byte"}},
		{"http host with a bad character", "http://a!b/", []string{`probe "http://a!b/"`, `host "a!b"`}},
		{"http host with a space", "http://a b/", []string{`probe "http://a b/"`}},
		{"http no slashes", "http:localhost:8080", []string{`probe "http:localhost:8080"`, "HOST"}},
		{"http empty ipv6", "http://[]/", []string{`probe "http://[]/"`}},
		{"notify with argument", "notify:x", []string{`probe "notify:x"`, "notify takes no argument"}},
		{"notify with empty argument", "notify:", []string{`probe "notify:"`, "notify takes no argument"}},
		{"notify upper case", "NOTIFY", []string{`probe "NOTIFY"`, "want KIND:ARGUMENT"}},
		{"log without regex", "log:", []string{`probe "log:"`, "regular expression"}},
		{"log bad regex", "log:(ready", []string{`probe "log:(ready"`, "missing closing )"}},
		{"unknown kind", "foo:bar", []string{`probe "foo:bar"`, `unknown kind "foo"`, "tcp, file, exec", "notify"}},
		{"kind is case-sensitive", "TCP:80", []string{`probe "TCP:80"`, `unknown kind "TCP"`}},
		{"no colon", "nocolon", []string{`probe "nocolon"`, "want KIND:ARGUMENT"}},
		{"empty", "", []string{`probe ""`, "want KIND:ARGUMENT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readiness.Parse(tt.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want an error", tt.spec, p)
			}
			if p != nil {
				t.Errorf("Parse(%q) returned probe %#v with its error", tt.spec, p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error %q does not contain %q", tt.spec, err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr []string
	}{
		{name: "words", in: "migrate -path /m up", want: []string{"migrate", "-path", "/m", "up"}},
		{name: "extra blanks", in: "  a \t b  ", want: []string{"a", "b"}},
		{name: "single quotes keep everything", in: `echo 'a "b" $c \d'`, want: []string{"echo", `a "b" $c \d`}},
		{name: "double quotes", in: `echo "a 'b' c"`, want: []string{"echo", "a 'b' c"}},
		{name: "backslash escapes a blank", in: `echo a\ b`, want: []string{"echo", "a b"}},
		{name: "empty quoted argument kept", in: `printf '%s|' '' x`, want: []string{"printf", "%s|", "", "x"}},
		{name: "comma is not a separator", in: `echo a, "b c"`, want: []string{"echo", "a,", "b c"}},
		{name: "quoted operators are arguments", in: `sh -c 'a && b | c; d > e'`, want: []string{"sh", "-c", "a && b | c; d > e"}},
		{name: "escaped operator is an argument", in: `echo a \& b`, want: []string{"echo", "a", "&", "b"}},
		{name: "no variable expansion", in: `echo $HOME ${X}`, want: []string{"echo", "$HOME", "${X}"}},
		{name: "no command substitution", in: "echo `id`", want: []string{"echo", "`id`"}},
		{name: "empty", in: "", wantErr: []string{`command ""`, "empty"}},
		{name: "blank", in: " \t ", wantErr: []string{"empty"}},
		{name: "unbalanced single quote", in: `echo 'a`, wantErr: []string{`command "echo 'a"`, "unbalanced quotes"}},
		{name: "unbalanced double quote", in: `echo "a`, wantErr: []string{"unbalanced quotes"}},
		{name: "trailing backslash", in: `echo a\`, wantErr: []string{"trailing backslash"}},
		{name: "and-and", in: "a && b", wantErr: []string{`command "a && b"`, "shell operator", `at "&& b"`}},
		{name: "or-or", in: "a || b", wantErr: []string{"shell operator", `at "|| b"`}},
		{name: "input redirect", in: "a < f", wantErr: []string{"shell operator", `at "< f"`}},
		{name: "operator without blanks", in: "a;b", wantErr: []string{"shell operator", `at ";b"`}},
		// The operator's position must be right after non-ASCII text too.
		{name: "operator after non-ASCII", in: "écho && b", wantErr: []string{"shell operator", `at "&& b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readiness.SplitCommand(tt.in)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("SplitCommand(%q) = %q, want an error", tt.in, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("SplitCommand(%q) error %q does not contain %q", tt.in, err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitCommand(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitCommand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
