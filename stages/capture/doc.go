// Package capture reads frames from video files, image folders, RTSP/HTTP streams and devices with gocv,
// reconnecting live sources with backoff and watching them for stalls.
package capture
