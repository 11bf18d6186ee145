// Package control is mainstay's control socket: the server that a running
// mainstay listens with, the protocol, and the client that the status,
// restart, stop, start, signal and health subcommands use. What the
// requests do is not here: the lifecycle implements [Handler].
//
// # Protocol
//
// A unix stream socket (default [DefaultPath]) carries newline-delimited
// JSON: the client writes one request line, the server writes one answer
// line; a client may send further requests on the same connection, one
// at a time, each after the previous answer. Both carry "v": 1
// ([Version]).
//
//	{"v":1,"op":"status"}                                    {"v":1,"ok":true,"status":{...}}
//	{"v":1,"op":"status","names":["cache"]}
//	{"v":1,"op":"health","level":"alive"}                    {"v":1,"ok":true,"health":{"level":"alive","healthy":true,"phase":"ready"}}
//	{"v":1,"op":"restart","names":["cache"]}                 {"v":1,"ok":true}
//	{"v":1,"op":"stop","names":["cache"]}
//	{"v":1,"op":"start","names":["cache"]}
//	{"v":1,"op":"signal","signal":"HUP","names":["web"]}
//	                                                         {"v":1,"ok":false,"error":{"kind":"refused","message":"starting: ..."}}
//
// The status object is [Status], stable for scripts (fields are added,
// never removed or changed); error kinds are the Kind constants.
//
// # Invariants
//
//   - Ownership by a lock, never by guessing: the server holds an
//     exclusive flock on PATH.lock for as long as it serves PATH. A held
//     lock is another mainstay ([ErrInUse]); a free one makes whatever
//     socket file is at PATH stale, and it is replaced. Anything else at
//     PATH (a regular file, a symlink, a directory) is never removed. The
//     directory is opened once (O_PATH), and every later operation goes
//     through that descriptor without following a symlink in the last
//     component, as the state files' code does. Never an abstract socket.
//   - Access by the peer's credentials (SO_PEERCRED, read on each
//     connection, checked for each request): uid 0 and the server's own
//     uid may restart, stop, start and signal; any other uid may ask for
//     status and health only, and sees no child's Command. The overflow
//     uid (65534, how a user of an unmapped user namespace appears) is
//     never privileged, even when the server runs as it. Each changing
//     request is logged with the caller's uid and pid and its result.
//   - Bounded: a request line is at most [MaxRequest] bytes; each must be
//     complete within [ReadTimeout]; at most [MaxConns] connections are
//     served at once and at most [MaxChanging] changing requests are in
//     the handler at once (the excess gets a "busy" answer). A bad
//     request (not JSON, too long, late, wrong version, unknown op or
//     field) gets an error answer and the connection is closed; it never
//     stops the server nor holds up another client.
//   - No idle cost: one goroutine blocked in accept while no client is
//     connected; no timer, no polling.
//   - [Server.Close] waits for every connection's goroutine, removes the
//     socket file (only the one it bound), then releases the lock.
package control
