// The image being completed, nearest-neighbour: texelFetch of the pixel under the fragment.
// The texture is W x 2H RGBA8: rows [0, H) hold the colours, rows [H, 2H) the pixel's info
// (r: 0 pending, 1 prompt, 2 generated, 3 partly generated, 4 the gap between samples of a
// grid; g: mean entropy / 8 bits; b: mean surprise at the true image / 8 bits; a: 1 where
// there is a surprise).
// colormap.glsl is prepended after the version line by the canvas.
uniform sampler2D u_image;
uniform ivec2 u_size;
uniform ivec2 u_next;          // pixel of the next position; (-1, -1) when none
uniform ivec2 u_hover;         // pixel under the mouse; (-1, -1) when none
uniform int u_mode;            // 0 image, 1 entropy heatmap, 2 surprise heatmap (viridis)
uniform bool u_mark_prompt;    // tint prompt pixels and outline where the prompt ends
in vec2 v_pixel;
out vec4 frag_color;

void main() {
  ivec2 px = clamp(ivec2(floor(v_pixel)), ivec2(0), u_size - 1);
  vec4 color = texelFetch(u_image, px, 0);
  vec4 info = texelFetch(u_image, px + ivec2(0, u_size.y), 0);
  int state = int(info.r * 255.0 + 0.5);
  vec3 rgb = color.rgb;
  // The surprise is of the real image, so it is there for pending pixels too.
  bool surprise = u_mode == 2 && info.a > 0.0 && state != 4;
  if (u_mode == 1) rgb = state == 0 ? vec3(0.0) : viridis(info.g);
  if (surprise) rgb = viridis(info.b);
  if (state == 4) rgb = vec3(0.0);
  if (state == 0 && !surprise) {
    // Pending: a dark checkerboard, so it never reads as a black generated pixel.
    bool odd = ((px.x + px.y) & 1) == 1;
    rgb = odd ? vec3(0.16) : vec3(0.22);
  } else if (u_mark_prompt && state == 1) {
    if (!surprise) rgb = mix(rgb, vec3(0.2, 0.45, 1.0), 0.2);
    // A cyan line along the edge between the kept rows and the first generated row.
    bool last_row = px.y + 1 >= u_size.y ||
                    int(texelFetch(u_image, px + ivec2(0, u_size.y + 1), 0).r * 255.0 + 0.5) != 1;
    if (last_row && fract(v_pixel.y) > 1.0 - 2.0 * fwidth(v_pixel.y)) rgb = vec3(0.0, 0.9, 1.0);
  }
  // Outlines about two screen pixels wide at any zoom: the next position in yellow, the
  // hovered pixel in white.
  vec2 f = fract(v_pixel);
  vec2 w = 2.0 * fwidth(v_pixel);
  bool edge = any(lessThan(f, w)) || any(greaterThan(f, vec2(1.0) - w));
  if (edge && px == u_next) rgb = vec3(1.0, 0.85, 0.0);
  if (edge && px == u_hover) rgb = vec3(1.0);
  frag_color = vec4(rgb, 1.0);
}
