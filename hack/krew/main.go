// Command krew cross-builds kubectl-lbstack into reproducible release
// archives and writes the krew manifest that installs them (`make krew`).
//
// Each archive is a gzip'd tar of the binary and LICENSE with fixed
// timestamps, owners and modes, so the same source and Go toolchain give
// the same bytes and the manifest's sha256 can be checked by anyone.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	version := flag.String("version", "", "the release version, for example 0.1.0")
	out := flag.String("out", "bin/krew", "where the archives and lbstack.yaml go")
	goBin := flag.String("go", "go", "the go command")
	platforms := flag.String("platforms", strings.Join(defaultPlatforms, ","), "os/arch pairs to build")
	flag.Parse()
	if *version == "" {
		fmt.Fprintln(os.Stderr, "krew: -version is required")
		os.Exit(2)
	}
	if err := run(*goBin, *version, *out, strings.Split(*platforms, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "krew: %v\n", err)
		os.Exit(1)
	}
}

func run(goBin, version, out string, platforms []string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	license, err := os.ReadFile("LICENSE")
	if err != nil {
		return err
	}
	var archives []Archive
	for _, p := range platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return fmt.Errorf("platform %q is not os/arch", p)
		}
		bin := filepath.Join(out, "build", goos+"-"+goarch, binaryName(goos))
		cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false",
			"-ldflags", "-s -w -X github.com/lbstack/lbstack/internal/version.Version=v"+version,
			"-o", bin, "./cmd/kubectl-lbstack")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building for %s: %w", p, err)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		a, err := Pack(goos, goarch, data, license)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, a.File), a.Data, 0o644); err != nil {
			return err
		}
		archives = append(archives, a)
	}
	m, err := Manifest(version, archives)
	if err != nil {
		return err
	}
	path := filepath.Join(out, "lbstack.yaml")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return os.RemoveAll(filepath.Join(out, "build"))
}
