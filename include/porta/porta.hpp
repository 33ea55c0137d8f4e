// porta: a hardware-portable tensor runtime. Build a model once as a Graph, compile it for the
// reference, cpu, opencl or npu-sim backend, run it, compare numbers and speed.
// This header brings in the whole public API.
#pragma once

#include <porta/device.hpp>
#include <porta/dtype.hpp>
#include <porta/error.hpp>
#include <porta/executable.hpp>
#include <porta/graph.hpp>
#include <porta/io.hpp>
#include <porta/moe.hpp>
#include <porta/ops.hpp>
#include <porta/quant.hpp>
#include <porta/shape.hpp>
#include <porta/tensor.hpp>
#include <porta/version.hpp>
