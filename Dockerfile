# syntax=docker/dockerfile:1
#
# sestream container image: Debian 12, OpenCV 4.6 runtime libraries, the pinned ONNX Runtime library, the bundled
# model and sample video, running as an unprivileged user.
#
#   docker build -t sestream .
#   docker run --rm -p 127.0.0.1:9090:9090 sestream          # the built-in demo (embedded NATS)
#
# The metrics endpoint listens on 0.0.0.0:9090 inside the container (SESTREAM_HTTP_LISTEN); publish it on the host
# side only where it should be reachable.

ARG GO_VERSION=1.26

# ---- build: the Go toolchain, libopencv-dev, and the ONNX Runtime library -------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# scripts/setup.sh holds the pinned ONNX Runtime package and its SHA-256: it installs the build packages
# (libopencv-dev, pkg-config, gcc, npm) and fetches the library with `npm pack`, verifying the checksum, into
# third_party/onnxruntime/ exactly as on a workstation.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --runtime && rm -rf /var/lib/apt/lists/* /root/.npm
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# --as-needed keeps only the OpenCV libraries the binary really calls, so the runtime image needs only those.
RUN CGO_LDFLAGS="-Wl,--as-needed" go build -trimpath \
      -ldflags "-s -w -X github.com/sestream/sestream/version.override=${VERSION}" \
      -o /out/sestream ./cmd/sestream
# The Debian packages that provide the shared libraries the binary links directly (measured on Debian 12:
# libc6 libgcc-s1 libstdc++6 and libopencv-{calib3d,core,dnn,features2d,highgui,imgcodecs,imgproc,objdetect,
# photo,video,videoio}406): the runtime stage checks that it installed each of them.
RUN readelf -d /out/sestream | awk '/NEEDED/ {gsub(/[][]/, "", $5); print "*/" $5}' \
      | xargs dpkg -S | cut -d: -f1 | sort -u > /out/runtime-packages \
    && cat /out/runtime-packages

# ---- runtime ---------------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# OpenCV 4.6 runtime libraries as Debian 12 names them (the modules gocv links; apt adds their dependencies such as
# libopencv-flann406 and the FFmpeg and GStreamer libraries of videoio), TLS roots for NATS over TLS, and curl
# for the health check.
ARG RUNTIME_PACKAGES="libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-videoio406 \
  libopencv-dnn406 libopencv-highgui406 libopencv-objdetect406 libopencv-features2d406 libopencv-calib3d406 \
  libopencv-photo406 libopencv-video406 ca-certificates curl"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/runtime-packages /usr/share/sestream/runtime-packages
COPY --from=build /out/sestream /opt/sestream/bin/sestream
COPY --from=build /src/third_party/onnxruntime/libonnxruntime.so.1 /opt/sestream/third_party/onnxruntime/libonnxruntime.so.1
COPY models/fashion-se.onnx /opt/sestream/models/fashion-se.onnx
COPY samples/fashion.mp4 /opt/sestream/samples/fashion.mp4
# Fail the build, naming what is missing, when a library the binary loads is not installed.
RUN dpkg-query -W $(cat /usr/share/sestream/runtime-packages) >/dev/null \
    && ! ldd /opt/sestream/bin/sestream | grep 'not found' \
    && /opt/sestream/bin/sestream version
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/sestream --create-home sestream
# sestream finds the bundled model, the sample and the ONNX Runtime library next to its executable's parent
# directory (/opt/sestream).
ENV PATH=/opt/sestream/bin:$PATH \
    SESTREAM_HTTP_LISTEN=0.0.0.0:9090 \
    SESTREAM_LOG_FORMAT=json
USER sestream:sestream
WORKDIR /var/lib/sestream
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9090/healthz >/dev/null || exit 1
ENTRYPOINT ["sestream"]
CMD ["run"]
