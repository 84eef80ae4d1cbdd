// A scalar field over an image, one texel per pixel, nearest-neighbour. u_values (R32F)
// holds the field; negative = no value there (pending, checkerboard), <= -2 = not causal
// (flat grey). Modes: 0 heat (viridis over the dimmed base image, more opaque as v grows;
// 0 = none, the image shows), 1 colours (the base image as it is: categories coloured in C++,
// render::CategoryPalette), 2 plain viridis. The marked pixel gets an outline. colormap.glsl
// is prepended by render::FieldView; the same mapping in C++ is render::field_render.
uniform sampler2D u_base;
uniform sampler2D u_values;
uniform ivec2 u_size;
uniform int u_mode;
uniform ivec2 u_marker;
in vec2 v_pixel;
out vec4 frag_color;

void main() {
  ivec2 px = clamp(ivec2(floor(v_pixel)), ivec2(0), u_size - 1);
  float v = texelFetch(u_values, px, 0).r;
  vec3 base = texelFetch(u_base, px, 0).rgb;
  vec3 rgb;
  if (v <= -2.0) {
    rgb = vec3(118.0, 118.0, 124.0) / 255.0;
  } else if (v < 0.0) {
    rgb = ((px.x + px.y) & 1) == 1 ? vec3(0.16) : vec3(0.22);
  } else if (u_mode == 1) {
    rgb = base;
  } else if (u_mode == 2) {
    rgb = viridis(v);
  } else {
    float a = v > 0.0 ? 0.4 + 0.6 * v : 0.0;
    rgb = mix(base * 0.35, viridis(v), a);
  }
  vec2 f = fract(v_pixel);
  vec2 w = 2.0 * fwidth(v_pixel);
  bool edge = any(lessThan(f, w)) || any(greaterThan(f, vec2(1.0) - w));
  if (edge && px == u_marker) rgb = vec3(1.0, 0.2, 0.2);
  frag_color = vec4(rgb, 1.0);
}
