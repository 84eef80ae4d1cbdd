#version 330 core
// The canvas quad: a unit square scaled to the image (model matrix) and placed on screen by
// the view (zoom, pan) and an orthographic projection in widget pixels.
layout(location = 0) in vec2 a_unit;
uniform mat4 u_mvp;
uniform vec2 u_image_size;
out vec2 v_pixel;  // position in image pixels, (0, 0) at the top-left corner

void main() {
  v_pixel = a_unit * u_image_size;
  gl_Position = u_mvp * vec4(a_unit, 0.0, 1.0);
}
