// Command echo is the backend the real-cluster tests put behind a
// LoadBalancer Service. It answers every request with one line,
//
//	pod=<POD_NAME> node=<NODE_NAME> client=<remote ip:port>
//
// so a test sees which pod served it and which source address reached the
// pod (to check externalTrafficPolicy: Local keeps the client's address).
// /healthz answers 200. It listens on every IPv4 and IPv6 address on $PORT
// (default 8080), closes each connection after its response, so that every
// request is balanced afresh, and exits 0 on SIGTERM after draining.
//
// The settings come from the environment because that is how a Pod passes
// them (the downward API for POD_NAME and NODE_NAME).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	pod, node := os.Getenv("POD_NAME"), os.Getenv("NODE_NAME")

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod=%s node=%s client=%s\n", pod, node, r.RemoteAddr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.SetKeepAlivesEnabled(false)

	// An empty host is one dual-stack socket: IPv6, and IPv4 mapped into it
	// (reported as plain a.b.c.d in RemoteAddr).
	ln, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return err
	}
	log.Printf("Serving on %s as pod=%s node=%s", ln.Addr(), pod, node)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Print("Shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
