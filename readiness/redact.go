package readiness

import (
	"net/url"
	"strings"
)

// redacted stands for a password wherever a spec is shown, as net/url's
// (*URL).Redacted writes it.
const redacted = "xxxxx"

// Redact returns s, free text that may quote specs or commands (an error
// message, a --sidecar line, an exec: command), with the password of
// every URL in it replaced by xxxxx: SCHEME://USER:PASSWORD@HOST becomes
// SCHEME://USER:xxxxx@HOST, as (*url.URL).Redacted shows it; the user
// name stays. In free text a URL's authority is taken to end at a '/', a
// blank, a double quote or a character no URL holds there, so a password
// that holds one of those (the URL is then invalid, and [Parse] refuses
// it, redacting it whole in its error) may show in part.
func Redact(s string) string {
	return redactURLs(s, "/ \t\r\n\"`<>\\^{|}")
}

// redactURLs replaces the password of every "://" authority in s, an
// authority ending at the first byte of stops (or at the end of s).
func redactURLs(s, stops string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		start := i + len("://")
		end := len(s)
		if j := strings.IndexAny(s[start:], stops); j >= 0 {
			end = start + j
		}
		b.WriteString(s[:start])
		b.WriteString(redactUserinfo(s[start:end]))
		s = s[end:]
	}
	b.WriteString(s)
	return b.String()
}

// redactUserinfo replaces the password of authority: what lies between
// the first ':' and the last '@' (net/url too takes the last '@' as the
// end of the user information), when there is both.
func redactUserinfo(authority string) string {
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return authority
	}
	colon := strings.IndexByte(authority[:at], ':')
	if colon < 0 {
		return authority
	}
	return authority[:colon+1] + redacted + authority[at:]
}

// redactSpec is how a spec is shown: for a URL kind (http://, https://,
// https+insecure://, tcp://), rawURL being the spec as a URL, with its
// password replaced by xxxxx; any other spec as [Redact] shows free text.
// A URL net/url accepts loses exactly the password net/url finds in it
// (the authority ends at the first '/', '?' or '#'); for one it refuses,
// which is only shown in the error that refuses it, everything from the
// first ':' after "//" to the last '@' of the spec goes, so that no part
// of a malformed password shows.
func redactSpec(spec string, isURL bool) string {
	if !isURL {
		return Redact(spec)
	}
	stops := "/?#"
	if _, err := url.Parse(spec); err != nil {
		stops = "" // up to the last '@'
	}
	return redactURLs(spec, stops)
}
