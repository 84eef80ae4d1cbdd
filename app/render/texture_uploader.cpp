// The two upload paths behind TextureUploader and the choice between them. The interop path
// is compiled only with ATTNSCOPE_HAVE_CUDA; its failures fall back to the host path.
#include "texture_uploader.h"

#include <QOpenGLFunctions_3_3_Core>

#ifdef ATTNSCOPE_HAVE_CUDA
#include <cuda_gl_interop.h>
#include <cuda_runtime.h>
#endif

namespace render {

namespace {

class HostUploader final : public TextureUploader {
 public:
  explicit HostUploader(QOpenGLFunctions_3_3_Core* gl) : gl_(gl) {}
  QString name() const override { return QStringLiteral("host (glTexSubImage2D)"); }
  bool upload(unsigned texture, int w, int h, const uint8_t* rgba, QString*) override {
    gl_->glBindTexture(GL_TEXTURE_2D, texture);
    gl_->glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    gl_->glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
    return true;
  }
  void release() override {}

 private:
  QOpenGLFunctions_3_3_Core* gl_;
};

#ifdef ATTNSCOPE_HAVE_CUDA
// The pixel buffer is registered once per size; each upload maps it, copies the pixels into
// it with CUDA, unmaps it and has GL read the texture from the bound buffer.
class CudaInteropUploader final : public TextureUploader {
 public:
  explicit CudaInteropUploader(QOpenGLFunctions_3_3_Core* gl) : gl_(gl) {}
  ~CudaInteropUploader() override = default;
  QString name() const override {
    return QStringLiteral("CUDA-GL interop (cudaGraphicsGLRegisterBuffer PBO)");
  }
  bool upload(unsigned texture, int w, int h, const uint8_t* rgba, QString* why) override {
    const size_t bytes = static_cast<size_t>(w) * static_cast<size_t>(h) * 4;
    if (bytes != bytes_ && !resize(bytes, why)) return false;
    cudaError_t err = cudaGraphicsMapResources(1, &resource_, nullptr);
    if (err != cudaSuccess) return fail("cudaGraphicsMapResources", err, why);
    void* device = nullptr;
    size_t mapped = 0;
    err = cudaGraphicsResourceGetMappedPointer(&device, &mapped, resource_);
    if (err == cudaSuccess) err = cudaMemcpy(device, rgba, bytes, cudaMemcpyHostToDevice);
    const cudaError_t unmap = cudaGraphicsUnmapResources(1, &resource_, nullptr);
    if (err != cudaSuccess) return fail("copy into the mapped buffer", err, why);
    if (unmap != cudaSuccess) return fail("cudaGraphicsUnmapResources", unmap, why);
    gl_->glBindBuffer(GL_PIXEL_UNPACK_BUFFER, pbo_);
    gl_->glBindTexture(GL_TEXTURE_2D, texture);
    gl_->glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    gl_->glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    gl_->glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
    return true;
  }
  void release() override {
    if (resource_) cudaGraphicsUnregisterResource(resource_);
    resource_ = nullptr;
    if (pbo_) gl_->glDeleteBuffers(1, &pbo_);
    pbo_ = 0;
    bytes_ = 0;
  }
  // Registers a first buffer, so that a context that cannot share with CUDA is found out
  // before this path is chosen.
  bool probe(QString* why) { return resize(4, why); }

 private:
  static bool fail(const char* what, cudaError_t err, QString* why) {
    if (why) *why = QStringLiteral("%1: %2").arg(what, cudaGetErrorString(err));
    return false;
  }
  bool resize(size_t bytes, QString* why) {
    release();
    gl_->glGenBuffers(1, &pbo_);
    gl_->glBindBuffer(GL_PIXEL_UNPACK_BUFFER, pbo_);
    gl_->glBufferData(GL_PIXEL_UNPACK_BUFFER, static_cast<GLsizeiptr>(bytes), nullptr,
                      GL_STREAM_DRAW);
    gl_->glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
    const cudaError_t err =
        cudaGraphicsGLRegisterBuffer(&resource_, pbo_, cudaGraphicsRegisterFlagsWriteDiscard);
    if (err != cudaSuccess) {
      resource_ = nullptr;
      release();
      return fail("cudaGraphicsGLRegisterBuffer", err, why);
    }
    bytes_ = bytes;
    return true;
  }

  QOpenGLFunctions_3_3_Core* gl_;
  GLuint pbo_ = 0;
  cudaGraphicsResource* resource_ = nullptr;
  size_t bytes_ = 0;
};
#endif

}  // namespace

std::unique_ptr<TextureUploader> texture_uploader_create_host(QOpenGLFunctions_3_3_Core* gl) {
  return std::make_unique<HostUploader>(gl);
}

std::unique_ptr<TextureUploader> texture_uploader_create(QOpenGLFunctions_3_3_Core* gl,
                                                         QString* reason) {
#ifdef ATTNSCOPE_HAVE_CUDA
  int devices = 0;  // cudaGetDeviceCount leaves it untouched when there is no driver
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    *reason = QStringLiteral("no CUDA device");
    return texture_uploader_create_host(gl);
  }
  const auto* vendor = reinterpret_cast<const char*>(gl->glGetString(GL_VENDOR));
  if (!vendor || !QByteArray(vendor).contains("NVIDIA")) {
    *reason = QStringLiteral("GL vendor is %1, not NVIDIA").arg(vendor ? vendor : "unknown");
    return texture_uploader_create_host(gl);
  }
  auto interop = std::make_unique<CudaInteropUploader>(gl);
  QString why;
  if (!interop->probe(&why)) {
    *reason = why;
    return texture_uploader_create_host(gl);
  }
  interop->release();
  *reason = QString();
  return interop;
#else
  *reason = QStringLiteral("this build has no CUDA");
  return texture_uploader_create_host(gl);
#endif
}

}  // namespace render
