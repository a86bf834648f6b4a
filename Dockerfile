# One static image for the three components (operator, controller, speaker):
# `lbstack operator`, `lbstack controller`, `lbstack speaker`.
#
# `make image` writes the same image (hack/image) as a reproducible OCI
# archive without Docker: same files, same user, same entrypoint. Both take
# /etc/passwd and /etc/group from hack/image/rootfs.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY speaker/ speaker/
COPY webhooks/ webhooks/
COPY hack/image/rootfs/ /rootfs/
RUN chmod 0755 /rootfs/etc && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group \
	&& mkdir -m 1777 /rootfs/tmp \
	&& CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags="-s -w" -o /rootfs/lbstack ./cmd/lbstack

# Nothing but the binary: no shell, no libc. /lbstack (0755), /etc/passwd
# and /etc/group with root and nonroot (65532), /tmp (1777). The operator
# and controller run as nonroot; the speaker's DaemonSet overrides the user
# to root with only the NET_RAW, NET_ADMIN and NET_BIND_SERVICE (BGP's port
# 179) capabilities, which it needs to answer ARP/NDP and open BGP sessions
# on the host network.
FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/lbstack"]
