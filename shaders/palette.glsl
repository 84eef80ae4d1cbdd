// The categorical bucket palette: hue steps by the golden ratio, saturation and value
// alternate, so neighbouring bucket ids differ clearly. app/render/palette.cpp computes the
// same colours in C++ for exports and tests.
vec3 bucket_color(int b) {
  float h = fract(float(b) * 0.6180339887);
  float s = (b % 2) == 0 ? 0.75 : 0.5;
  float v = ((b / 2) % 2) == 0 ? 0.95 : 0.75;
  vec3 k = clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0);
  return v * mix(vec3(1.0), k, s);
}
