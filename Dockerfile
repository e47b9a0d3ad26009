# Multi-stage build on Debian bookworm; the runtime image holds the binary, its shared libraries and
# the default config (no compiler), and runs Spillway as a non-root user (uid and gid 10001).
#   podman build --runtime runc -t spillway .   (or docker build -t spillway .)
#   podman run --rm -p 8080:8080 -v $PWD/config:/etc/spillway spillway
# scripts/container-check.sh builds it, runs it and checks all of the above.
FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build pkg-config libboost1.81-dev node-llhttp libssl-dev libyaml-cpp-dev libfmt-dev \
      libnghttp2-dev libgoogle-perftools-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPILLWAY_TESTS=OFF \
    && cmake --build build --target spillway

FROM debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libssl3 libyaml-cpp0.7 libfmt9 libnghttp2-14 libtcmalloc-minimal4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 spillway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home spillway
COPY --from=build /src/build/spillway /usr/local/bin/spillway
COPY config /etc/spillway
USER 10001:10001
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/spillway"]
CMD ["run", "-c", "/etc/spillway/spillway.yaml"]
