// One interface for getting the canvas pixels from memory into a GL texture, with two paths:
// the host path (glTexSubImage2D from client memory) and CUDA-GL interop (a pixel buffer
// registered with cudaGraphicsGLRegisterBuffer, write-discard), built with ATTNSCOPE_HAVE_CUDA.
#pragma once

#include <QString>
#include <cstdint>
#include <memory>

class QOpenGLFunctions_3_3_Core;

namespace render {

class TextureUploader {
 public:
  virtual ~TextureUploader() = default;
  // The path's name as the UI shows it.
  virtual QString name() const = 0;
  // Copies w x h RGBA8 pixels (rows top to bottom, tightly packed) into texture, which has
  // that size. Call with the context current. False when the copy failed; *why says why.
  virtual bool upload(unsigned texture, int w, int h, const uint8_t* rgba, QString* why) = 0;
  // Frees GL (and CUDA) resources; call with the context current, before it goes.
  virtual void release() = 0;
};

// The interop path when the build has CUDA, a CUDA device answers and the GL vendor is
// NVIDIA; the host path otherwise. *reason says why the host path was chosen.
std::unique_ptr<TextureUploader> texture_uploader_create(QOpenGLFunctions_3_3_Core* gl,
                                                         QString* reason);
std::unique_ptr<TextureUploader> texture_uploader_create_host(QOpenGLFunctions_3_3_Core* gl);

}  // namespace render
