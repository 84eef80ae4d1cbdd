// The viridis polynomial evaluated in double precision and rounded to bytes.
#include "colormap.h"

#include <algorithm>
#include <cmath>

namespace render {

const std::array<std::array<double, 3>, 7> kViridisCoefficients = {{
    {0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
    {0.1050930431085774, 1.404613529898575, 1.384590162594685},
    {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
    {-4.634230498983486, -5.799100973351585, -19.33244095627987},
    {6.228269936347081, 14.17993336680509, 56.69055260068105},
    {4.776384997670288, -13.74514537774601, -65.35303263337234},
    {-5.435455855934631, 4.645852612178535, 26.3124352495832},
}};

Rgb8 viridis(double t) {
  t = std::clamp(t, 0.0, 1.0);
  std::array<uint8_t, 3> out{};
  for (int ch = 0; ch < 3; ++ch) {
    double v = 0;
    for (int k = 6; k >= 0; --k) v = v * t + kViridisCoefficients[static_cast<size_t>(k)][ch];
    out[static_cast<size_t>(ch)] =
        static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
  }
  return {out[0], out[1], out[2]};
}

}  // namespace render
