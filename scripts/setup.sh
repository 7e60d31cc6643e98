#!/usr/bin/env bash
# Installs what sestream needs to build, run and test on Debian 12 / Ubuntu 24.04. Safe to rerun:
# it installs only what is missing.
#
#   scripts/setup.sh            Debian packages + the ONNX Runtime library
#   scripts/setup.sh --runtime  only what `sestream run` needs (no test fixture tools)
#
# The ONNX Runtime library goes to third_party/onnxruntime/libonnxruntime.so.1 (git-ignored), where the sestream
# binary finds it by itself. A system-wide libonnxruntime (ldconfig) is used instead when present.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-all}

# Pinned ONNX Runtime: the official Linux x64 build, as carried by the onnxruntime-node npm package.
ORT_NPM_PACKAGE=onnxruntime-node@1.30.0
ORT_MEMBER=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
ORT_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_DIR="$root/third_party/onnxruntime"

say() { printf 'setup: %s\n' "$*"; }

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

runtime_pkgs=(libopencv-dev pkg-config ffmpeg gcc g++ make ca-certificates)
test_pkgs=(nats-server python3-torch python3-torchvision python3-onnx python3-opencv python3-numpy python3-gi
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad gstreamer1.0-libav dataset-fashion-mnist)
test_pkgs+=(chromium)  # headless browser for the dashboard test (cmd/sestream TestDashboardInBrowser)
test_pkgs+=(prometheus)  # Prometheus and promtool for the alert tests in deploy/

install_packages() {
  local want=("${runtime_pkgs[@]}")
  [[ $mode == --runtime ]] || want+=("${test_pkgs[@]}")
  # npm fetches the ONNX Runtime library; a machine that already has node and npm keeps its own.
  if ! command -v npm >/dev/null && ! [[ -f $ORT_DIR/libonnxruntime.so.1 ]] && ! have_system_ort; then
    want+=(npm)
  fi
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "Debian packages present"
    return
  fi
  say "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts Prometheus as a service on 0.0.0.0:9090, sestream's default http.listen; the tests start their
  # own on free ports.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    sudo_if_needed systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

have_system_ort() {
  ldconfig -p 2>/dev/null | grep -q 'libonnxruntime\.so'
}

install_onnxruntime() {
  if [[ -f $ORT_DIR/libonnxruntime.so.1 ]] &&
    echo "$ORT_SHA256  $ORT_DIR/libonnxruntime.so.1" | sha256sum -c --quiet - 2>/dev/null; then
    say "ONNX Runtime present: $ORT_DIR/libonnxruntime.so.1"
    return
  fi
  if have_system_ort; then
    say "using the system ONNX Runtime: $(ldconfig -p | grep -m1 'libonnxruntime\.so' | awk '{print $NF}')"
    return
  fi
  say "fetching ONNX Runtime ($ORT_NPM_PACKAGE) from the npm registry"
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent "$ORT_NPM_PACKAGE" >/dev/null)
  local tarball
  tarball=$(ls "$tmp"/*.tgz)
  tar -xzf "$tarball" -C "$tmp" "$ORT_MEMBER"
  echo "$ORT_SHA256  $tmp/$ORT_MEMBER" | sha256sum -c --quiet - || {
    echo "setup: checksum mismatch for $ORT_MEMBER from $ORT_NPM_PACKAGE (want sha256 $ORT_SHA256)" >&2
    exit 1
  }
  mkdir -p "$ORT_DIR"
  install -m 0644 "$tmp/$ORT_MEMBER" "$ORT_DIR/libonnxruntime.so.1"
  say "installed $ORT_DIR/libonnxruntime.so.1"
}

check_go() {
  if ! command -v go >/dev/null; then
    echo "setup: Go is not on PATH; install Go 1.26 or newer (go.mod names the version)" >&2
    exit 1
  fi
}

install_packages
install_onnxruntime
check_go
say "done"
