package membership

import (
	"bytes"
	"log"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: Refuting a
// dead message (from: b)") into logr messages. memberlist's warnings and
// errors are mostly transient network trouble while a peer fails, so both
// go to V(0) with the memberlist level as a value (memberlistLevel); INFO goes to V(1) and
// DEBUG to V(2).
type logWriter struct {
	log logr.Logger
	// foreign is called for each line saying that a packet or stream could
	// not be decrypted: a speaker with another key.
	foreign func(msg string)
}

func newStdLogger(l logr.Logger, foreign func(string)) *log.Logger {
	return log.New(logWriter{log: l, foreign: foreign}, "", 0)
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
