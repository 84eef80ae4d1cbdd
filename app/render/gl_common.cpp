// Shader programs from the embedded shaders/ files, and the unit quad of the GL views.
#include "render/gl_common.h"

#include <QFile>

static void init_shader_resources() {
  Q_INIT_RESOURCE(shaders);
}

namespace render {

namespace {
QByteArray shader_source(const QString& name) {
  QFile f(QStringLiteral(":/shaders/") + name);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
}  // namespace

std::unique_ptr<QOpenGLShaderProgram> gl_build_program(const QStringList& fragment_files,
                                                       const char* what) {
  init_shader_resources();
  auto program = std::make_unique<QOpenGLShaderProgram>();
  QByteArray frag("#version 330 core\n");
  for (const QString& f : fragment_files) frag += shader_source(f);
  if (!program->addShaderFromSourceCode(QOpenGLShader::Vertex,
                                        shader_source(QStringLiteral("image.vert"))) ||
      !program->addShaderFromSourceCode(QOpenGLShader::Fragment, frag) || !program->link())
    qFatal("attnscope: the %s shaders do not build (%s); is shaders.qrc compiled in?", what,
           qPrintable(program->log()));
  return program;
}

void gl_make_unit_quad(QOpenGLFunctions_3_3_Core* gl, GLuint* vao, GLuint* vbo) {
  const float quad[] = {0, 0, 1, 0, 0, 1, 1, 1};
  gl->glGenVertexArrays(1, vao);
  gl->glBindVertexArray(*vao);
  gl->glGenBuffers(1, vbo);
  gl->glBindBuffer(GL_ARRAY_BUFFER, *vbo);
  gl->glBufferData(GL_ARRAY_BUFFER, sizeof quad, quad, GL_STATIC_DRAW);
  gl->glEnableVertexAttribArray(0);
  gl->glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, nullptr);
  gl->glBindVertexArray(0);
}

}  // namespace render
