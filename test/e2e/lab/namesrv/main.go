// Command namesrv is the lab's stand-in for a backend Pod: an HTTP server
// that answers every request with the name it was given, so a client can
// tell which node received its connection.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	name := flag.String("name", "", "name to answer with")
	addr := flag.String("listen", ":80", "address to listen on")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, *name)
	})))
}
