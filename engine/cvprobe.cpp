#include "cvprobe.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

static char *copy_message(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p != nullptr) {
        std::memcpy(p, s.c_str(), s.size() + 1);
    }
    return p;
}

// LogQuiet silences OpenCV's own error log while a probe that is allowed to fail runs. The log level is
// process-wide; it is restored when the probe ends.
struct LogQuiet {
    bool on;
    cv::utils::logging::LogLevel saved;
    explicit LogQuiet(bool quiet) : on(quiet), saved(cv::utils::logging::getLogLevel()) {
        if (on) {
            cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
        }
    }
    ~LogQuiet() {
        if (on) {
            cv::utils::logging::setLogLevel(saved);
        }
    }
};

char *sestream_cv_probe(const void *model, size_t len, int backend, int target, int n, int c, int h, int w,
                        const char **names, int nnames, int *ndims, int64_t *dims, int quiet) {
    LogQuiet q(quiet != 0);
    try {
        cv::dnn::Net net = cv::dnn::readNetFromONNX(static_cast<const char *>(model), len);
        if (net.empty()) {
            return copy_message("OpenCV imported an empty network");
        }
        net.setPreferableBackend(backend);
        net.setPreferableTarget(target);
        int sizes[4] = {n, c, h, w};
        cv::Mat blob(4, sizes, CV_32F, cv::Scalar(0));
        net.setInput(blob);
        std::vector<cv::String> layers(names, names + nnames);
        std::vector<cv::Mat> outs;
        net.forward(outs, layers);
        if (static_cast<int>(outs.size()) != nnames) {
            return copy_message("OpenCV returned " + std::to_string(outs.size()) + " blobs for " +
                                std::to_string(nnames) + " layers");
        }
        for (int i = 0; i < nnames; i++) {
            const cv::Mat &m = outs[i];
            if (m.type() != CV_32F || !m.isContinuous() || m.dims > SESTREAM_CV_MAX_DIMS) {
                return copy_message(std::string("layer ") + names[i] + " gives a blob that is not a continuous float32 tensor of rank <= 8");
            }
            ndims[i] = m.dims;
            for (int d = 0; d < m.dims; d++) {
                dims[i * SESTREAM_CV_MAX_DIMS + d] = m.size[d];
            }
        }
        return nullptr;
    } catch (const cv::Exception &e) {
        return copy_message(e.what());
    } catch (const std::exception &e) {
        return copy_message(e.what());
    } catch (...) {
        return copy_message("unknown C++ exception");
    }
}

void sestream_cv_set_threads(int n) {
    try {
        cv::setNumThreads(n);
    } catch (...) {
    }
}
