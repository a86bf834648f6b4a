package bgp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"

	"github.com/go-logr/logr"
)

const redactedText = "[redacted]"

// logAdapter implements gobgp's log.Logger on a logr.Logger:
//
//   - Panic, Fatal and Error become logr errors (the "Error" or "Err" field,
//     if an error, is the error). Panic then panics, as gobgp expects; Fatal
//     does not exit the process.
//   - Warn is V(0), Info V(1), Debug V(4).
//   - Messages are capitalised; field keys become lowerCamel
//     ("Communicated-Reason" becomes "communicatedReason") and are sorted.
//   - Values that are not numbers or booleans are formatted with %v and
//     every configured secret in them is replaced with "[redacted]".
//
// GetLevel always reports debug, so that gobgp produces the debug messages
// the observer needs (connection errors); those cost little when V(4) is
// off. SetLevel is accepted and ignored: verbosity belongs to the logr sink.
type logAdapter struct {
	log logr.Logger
	// secrets are redacted from values; replaced whole, never mutated.
	secrets atomic.Pointer[[]string]
	// observe, if set, sees every message before any level check.
	observe func(msg string, fields gobgplog.Fields)
}

var _ gobgplog.Logger = (*logAdapter)(nil)

func newLogAdapter(log logr.Logger, observe func(string, gobgplog.Fields)) *logAdapter {
	return &logAdapter{log: log, observe: observe}
}

// setSecrets replaces the strings to redact.
func (l *logAdapter) setSecrets(secrets []string) {
	s := slices.Clone(secrets)
	s = slices.DeleteFunc(s, func(x string) bool { return x == "" })
	l.secrets.Store(&s)
}

func (l *logAdapter) redact(s string) string {
	p := l.secrets.Load()
	if p == nil {
		return s
	}
	for _, secret := range *p {
		s = strings.ReplaceAll(s, secret, redactedText)
	}
	return s
}

// Panic logs and panics, like gobgp's default logrus logger.
func (l *logAdapter) Panic(msg string, fields gobgplog.Fields) {
	l.emitError(msg, fields, "panic")
	panic(l.redact(msg))
}

// Fatal logs an error; unlike logrus it does not exit the process.
func (l *logAdapter) Fatal(msg string, fields gobgplog.Fields) {
	l.emitError(msg, fields, "fatal")
}

// Error logs an error.
func (l *logAdapter) Error(msg string, fields gobgplog.Fields) {
	l.emitError(msg, fields, "")
}

// Warn logs at V(0).
func (l *logAdapter) Warn(msg string, fields gobgplog.Fields) { l.emit(0, msg, fields) }

// Info logs at V(1).
func (l *logAdapter) Info(msg string, fields gobgplog.Fields) { l.emit(1, msg, fields) }

// Debug logs at V(4).
func (l *logAdapter) Debug(msg string, fields gobgplog.Fields) { l.emit(4, msg, fields) }

// SetLevel is ignored; the logr sink decides verbosity.
func (l *logAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel reports debug so that gobgp emits the messages the observer
// needs.
func (l *logAdapter) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

func (l *logAdapter) emit(v int, msg string, fields gobgplog.Fields) {
	if l.observe != nil {
		l.observe(msg, fields)
	}
	lv := l.log.V(v)
	if !lv.Enabled() {
		return
	}
	kv, err := l.keysAndValues(fields)
	if err != nil {
		kv = append(kv, "error", err.Error())
	}
	lv.Info(capitalise(msg), kv...)
}

func (l *logAdapter) emitError(msg string, fields gobgplog.Fields, severity string) {
	if l.observe != nil {
		l.observe(msg, fields)
	}
	kv, err := l.keysAndValues(fields)
	if severity != "" {
		kv = append(kv, "severity", severity)
	}
	l.log.Error(err, capitalise(msg), kv...)
}

// keysAndValues converts gobgp's fields. The first error found under "Err"
// or "Error" is returned separately, redacted; the caller logs it as the
// error, or under the key "error".
func (l *logAdapter) keysAndValues(fields gobgplog.Fields) ([]any, error) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k == gobgplog.FieldFacility {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var err error
	kv := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		v := fields[k]
		if e, ok := v.(error); ok && err == nil && (k == "Err" || k == "Error") && e != nil {
			err = errors.New(l.redact(e.Error()))
			continue
		}
		kv = append(kv, lowerCamel(k), l.value(v))
	}
	return kv, err
}

func (l *logAdapter) value(v any) any {
	switch v := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return v
	case string:
		return l.redact(v)
	default:
		return l.redact(fmt.Sprintf("%v", v))
	}
}

// capitalise upper-cases the first letter and drops a trailing period.
func capitalise(msg string) string {
	msg = strings.TrimSuffix(msg, ".")
	r, n := utf8.DecodeRuneInString(msg)
	if n == 0 || unicode.IsUpper(r) {
		return msg
	}
	return string(unicode.ToUpper(r)) + msg[n:]
}

// lowerCamel turns gobgp's "Topic", "Key" or "Communicated-Reason" into
// "topic", "key" or "communicatedReason".
func lowerCamel(k string) string {
	var b strings.Builder
	upperNext := false
	for i, r := range k {
		switch {
		case r == '-' || r == '_' || r == ' ':
			upperNext = b.Len() > 0
		case b.Len() == 0:
			b.WriteRune(unicode.ToLower(r))
		case upperNext:
			b.WriteRune(unicode.ToUpper(r))
			upperNext = false
		case i > 0 && unicode.IsUpper(r) && allUpper(k[:i]):
			// An initialism such as "ID" or "AS": keep it lower case.
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func allUpper(s string) bool {
	for _, r := range s {
		if !unicode.IsUpper(r) {
			return false
		}
	}
	return true
}
