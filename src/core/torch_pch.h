// Precompiled header for every LibTorch translation unit (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>
