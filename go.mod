module github.com/mainstay-dev/mainstay

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/creack/pty v1.1.24
	github.com/mattn/go-shellwords v1.0.16
	golang.org/x/sys v0.50.0
)
