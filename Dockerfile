# One static image for the three components (operator, controller, speaker):
# `lbstack operator`, `lbstack controller`, `lbstack speaker`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY speaker/ speaker/
COPY webhooks/ webhooks/
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/lbstack ./cmd/lbstack

# distroless/static: no shell, no libc. The operator and controller run as
# the non-root user below; the speaker's DaemonSet overrides the user and
# adds NET_RAW/NET_ADMIN (and NET_BIND_SERVICE for BGP's port 179), which it
# needs to answer ARP/NDP and open BGP sessions on the host network.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lbstack /lbstack
USER 65532:65532
ENTRYPOINT ["/lbstack"]
