// C interface to the OpenCV DNN checks the engine runs before it hands a model to gocv: OpenCV throws C++
// exceptions that gocv does not catch (they abort the process), so every import and forward pass of a new
// configuration is tried here first, inside try/catch.
#ifndef SESTREAM_CVPROBE_H
#define SESTREAM_CVPROBE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SESTREAM_CV_MAX_DIMS 8

// sestream_cv_probe imports the ONNX model (len bytes), selects backend and target, runs one forward pass
// on zeros of shape n x c x h x w and asks for the layers in names. On success it returns NULL and writes
// each layer's blob rank to ndims[i] and its dimensions to dims[i*SESTREAM_CV_MAX_DIMS...]. On failure it
// returns an error message allocated with malloc (the caller frees it). With quiet set, OpenCV's own log is
// silenced during the probe (for probes whose failure is expected and handled).
char *sestream_cv_probe(const void *model, size_t len, int backend, int target, int n, int c, int h, int w,
                        const char **names, int nnames, int *ndims, int64_t *dims, int quiet);

// sestream_cv_set_threads sets OpenCV's process-wide thread count (cv::setNumThreads).
void sestream_cv_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
