// Viridis (CC0, from matplotlib) as a degree-6 polynomial; the same coefficient table as
// app/render/colormap.cpp (kViridisCoefficients), kept equal by tests/app/test_gui.cpp.
const vec3 kViridis[7] = vec3[7](
    vec3(0.2777273272234177, 0.005407344544966578, 0.3340998053353061),
    vec3(0.1050930431085774, 1.404613529898575, 1.384590162594685),
    vec3(-0.3308618287255563, 0.214847559468213, 0.09509516302823659),
    vec3(-4.634230498983486, -5.799100973351585, -19.33244095627987),
    vec3(6.228269936347081, 14.17993336680509, 56.69055260068105),
    vec3(4.776384997670288, -13.74514537774601, -65.35303263337234),
    vec3(-5.435455855934631, 4.645852612178535, 26.3124352495832));

vec3 viridis(float t) {
  t = clamp(t, 0.0, 1.0);
  vec3 v = kViridis[6];
  for (int k = 5; k >= 0; --k) v = v * t + kViridis[k];
  return clamp(v, 0.0, 1.0);
}
