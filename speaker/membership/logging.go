package membership

import (
	"bytes"
	"log"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: Refuting a
// dead message (from: b)") into logr messages. memberlist's warnings and
// errors are mostly transient network trouble while a peer fails, so both
// go to V(0) with the memberlist level as a value (memberlistLevel); INFO goes to V(1) and
// DEBUG to V(2).
//
// A warning or error about one remote packet or stream (memberlist ends
// those with "from=ADDRESS") is logged at most once per remoteLogInterval
// for each kind of message, with the count of those not logged since: a
// stranger flooding port 7946 with garbage must not flood the log (the
// packets are still counted, see foreign).
type logWriter struct {
	log logr.Logger
	// foreign is called for each line saying that a packet or stream could
	// not be decrypted: a speaker with another key.
	foreign func(msg string)
	limit   *remoteLimiter
}

func newStdLogger(l logr.Logger, foreign func(string)) *log.Logger {
	return log.New(logWriter{log: l, foreign: foreign, limit: newRemoteLimiter(time.Now)}, "", 0)
}

// remoteLogInterval is how often one kind of message about a remote
// packet or stream is logged.
const remoteLogInterval = 10 * time.Second

// maxRemoteKinds bounds the kinds of message remembered by the limiter.
const maxRemoteKinds = 64

// remoteLimiter rate-limits messages about remote packets and streams by
// kind: the message up to its first colon, or without its "from=" part.
type remoteLimiter struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*remoteKind
}

type remoteKind struct {
	last       time.Time
	suppressed int
}

func newRemoteLimiter(now func() time.Time) *remoteLimiter {
	return &remoteLimiter{now: now, kinds: map[string]*remoteKind{}}
}

// remoteKindOf returns the kind of a message about one remote packet or
// stream, or "" for any other message.
func remoteKindOf(level, msg string) string {
	if level != "WARN" && level != "ERR" {
		return ""
	}
	i := strings.LastIndex(msg, " from=")
	if i < 0 {
		return ""
	}
	kind := msg[:i]
	if c := strings.IndexByte(kind, ':'); c > 0 {
		kind = kind[:c]
	}
	return kind
}

// allow says whether a message of kind may be logged now, and how many of
// that kind were not logged since the last one that was.
func (l *remoteLimiter) allow(kind string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= maxRemoteKinds {
			for name, old := range l.kinds {
				if now.Sub(old.last) >= remoteLogInterval {
					delete(l.kinds, name)
				}
			}
			if len(l.kinds) >= maxRemoteKinds {
				return false, 0
			}
		}
		l.kinds[kind] = &remoteKind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < remoteLogInterval {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// undecryptable reports whether a memberlist log message says a packet or
// stream could not be decrypted with our key.
func undecryptable(msg string) bool {
	return strings.Contains(msg, "Decrypt packet failed") || strings.Contains(msg, "could decrypt") ||
		strings.Contains(msg, "unacceptable label")
}

func (w logWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(p)
	if w.foreign != nil && undecryptable(msg) {
		w.foreign(msg)
	}
	v := 0
	switch level {
	case "INFO":
		v = 1
	case "DEBUG":
		v = 2
	}
	if kind := remoteKindOf(level, msg); kind != "" && w.limit != nil {
		ok, suppressed := w.limit.allow(kind)
		if !ok {
			return len(p), nil
		}
		if suppressed > 0 {
			w.log.V(v).Info(msg, "memberlistLevel", level, "suppressedSinceLast", suppressed)
			return len(p), nil
		}
	}
	w.log.V(v).Info(msg, "memberlistLevel", level)
	return len(p), nil
}

// parseLogLine splits a memberlist log line into its level and its message,
// capitalised and without the "memberlist: " prefix or a trailing period.
func parseLogLine(p []byte) (level, msg string) {
	p = bytes.TrimSpace(p)
	if len(p) > 0 && p[0] == '[' {
		if end := bytes.IndexByte(p, ']'); end > 0 {
			level = string(p[1:end])
			p = bytes.TrimSpace(p[end+1:])
		}
	}
	p = bytes.TrimPrefix(p, []byte("memberlist: "))
	p = bytes.TrimSuffix(p, []byte("."))
	if r, size := utf8.DecodeRune(p); r != utf8.RuneError {
		return level, string(unicode.ToUpper(r)) + string(p[size:])
	}
	return level, string(p)
}
