// Package cli holds what the lbstack subcommands share: logging flags,
// the zapr logger and signal handling.
package cli

import (
	"flag"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LogOptions are the logging flags every subcommand accepts.
type LogOptions struct {
	// Level is error, warn, info or debug.
	Level string
	// Format is json (production) or console (development).
	Format string
}

// AddFlags registers --log-level and --log-format on fs.
func (o *LogOptions) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info", "log verbosity: error, warn, info or debug")
	fs.StringVar(&o.Format, "log-format", "json", "log encoding: json or console")
}

// NewLogger builds a logr.Logger backed by zap according to the options.
func (o LogOptions) NewLogger() (logr.Logger, error) {
	var level zapcore.Level
	switch o.Level {
	case "error":
		level = zapcore.ErrorLevel
	case "warn":
		level = zapcore.WarnLevel
	case "info", "":
		level = zapcore.InfoLevel
	case "debug":
		level = zapcore.DebugLevel
	default:
		return logr.Discard(), fmt.Errorf("--log-level %q: must be error, warn, info or debug", o.Level)
	}
	var cfg zap.Config
	switch o.Format {
	case "json", "":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return logr.Discard(), fmt.Errorf("--log-format %q: must be json or console", o.Format)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.Sampling = nil
	cfg.DisableStacktrace = level != zapcore.DebugLevel
	z, err := cfg.Build()
	if err != nil {
		return logr.Discard(), fmt.Errorf("building logger: %w", err)
	}
	return zapr.NewLogger(z), nil
}
