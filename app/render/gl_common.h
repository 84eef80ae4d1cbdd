// GL pieces shared by the OpenGL views (the canvas and the heatmap/palette field view): shader
// programs built from the embedded shaders/ files and the unit quad they draw.
#pragma once

#include <QOpenGLFunctions_3_3_Core>
#include <QOpenGLShaderProgram>
#include <QStringList>
#include <memory>

namespace render {

// Links shaders/image.vert with a fragment shader made of `fragment_files` (shaders/ names,
// in order) under "#version 330 core". The shaders are compiled into the binary, so failure
// is a build or driver fault: qFatal with the log, naming `what`.
std::unique_ptr<QOpenGLShaderProgram> gl_build_program(const QStringList& fragment_files,
                                                       const char* what);

// A vertex array holding the unit quad (0,0)-(1,1) as attribute 0, drawn as a triangle strip.
void gl_make_unit_quad(QOpenGLFunctions_3_3_Core* gl, GLuint* vao, GLuint* vbo);

}  // namespace render
