#!/usr/bin/python3
"""A small RTSP server for tests and demos: serves one H.264 MP4 file at rtsp://HOST:PORT/PATH.

Built on GStreamer's gst-rtsp-server through Python GI (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad). The file is played once in
real time, shared by all clients (they get end of stream when it ends; a client that
connects later starts it anew). The server prints "READY <url>" on stdout once it accepts
connections and runs until killed.

    /usr/bin/python3 scripts/rtsp_server.py --file clip.mp4 --port 8554 [--host 127.0.0.1] [--path /cam]
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True, help="H.264 MP4 file to serve")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--path", default="/cam")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )")
    factory.set_shared(True)
    factory.set_eos_shutdown(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        sys.exit(1)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://{args.host}:{args.port}{args.path}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
