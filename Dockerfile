# One image for operator and proxy, so control and data plane versions cannot drift.
# Build: make docker-build (needs a container engine).
FROM golang:1.26 AS build
WORKDIR /src
# Module downloads are cached in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY diagnose/ diagnose/
COPY dataplane/ dataplane/
COPY internal/ internal/
ARG VERSION=dev
# Static, reproducible: no cgo, no build paths, no VCS stamping.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/portico-dev/portico/internal/version.Version=${VERSION}" \
      -o /out/portico ./cmd/portico

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="portico" \
      org.opencontainers.image.description="Portico operator and edge proxy" \
      org.opencontainers.image.source="https://github.com/portico-dev/portico" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/portico /portico
USER 65532:65532
ENTRYPOINT ["/portico"]
